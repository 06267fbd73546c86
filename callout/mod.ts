/**
 * The NATS auth callout (issue 4): turns a client's OIDC access token, presented as its
 * NATS `token`, into a NATS user JWT with the permissions of its Fleet role
 * (core/permissions.ts), placed into the Fleet account.
 *
 * - {@link authorize}: the pure decision from verified claims to role, device id,
 *   permissions and expiry, or a reason to refuse;
 * - {@link startCalloutService}: the `$SYS.REQ.USER.AUTH` responder, with the token
 *   verifier injected ({@link TokenVerifier}) and optional xkey encryption;
 * - {@link AccountSigningKey}: the issuer key, signing natively (~0.02 ms) instead of
 *   nkeys' tweetnacl (~9 ms);
 * - {@link calloutConfigFile} / {@link loadCalloutKeys}: `callout.toml` and its seed files;
 * - {@link calloutServerConfig}: the matching nats-server block.
 *
 * @module
 */

export {
  authorize,
  type AuthorizerPolicy,
  type Decision,
  type VerifiedClaims,
} from "./authorizer.ts";
export {
  authorizerPolicy,
  CalloutConfig,
  calloutConfigFile,
  type CalloutKeys,
  loadCalloutKeys,
} from "./config.ts";
export {
  AccountSigningKey,
  CalloutKeyError,
  curveKeyFromSeed,
  decodeAuthorizationRequest,
  generateSeeds,
  publicKeyOfSeed,
} from "./keys.ts";
export {
  AUTH_ACCOUNT,
  calloutServerConfig,
  type CalloutServerSettings,
  serverSettings,
  SYSTEM_ACCOUNT,
} from "./nats_config.ts";
export {
  AUTH_CALLOUT_SUBJECT,
  CALLOUT_QUEUE,
  type CalloutService,
  type CalloutServiceOptions,
  type CalloutStats,
  REFUSAL_MESSAGE,
  SERVER_XKEY_HEADER,
  startCalloutService,
  type TokenVerifier,
  userClaims,
  type VerifiedToken,
} from "./service.ts";
