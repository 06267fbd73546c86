/**
 * The OIDC adapter: verifying access tokens against a provider's keys (the auth callout),
 * minting them from a private key (agents and the operator), presenting them to NATS, and
 * signing an admin in from a terminal with the device authorization grant (RFC 8628).
 *
 * The test provider (`test_provider.ts`, a real `oidc-provider` instance) is not exported
 * here so production code never loads it.
 *
 * @module
 */

export {
  createTokenVerifier,
  DEFAULT_ALGORITHMS,
  issuerProblem,
  type RejectionCode,
  RejectionCodes,
  TokenRejectedError,
  type TokenVerifier,
  type TokenVerifierOptions,
  type VerifiedToken,
} from "./verifier.ts";
export {
  createTokenSource,
  JWT_BEARER_GRANT_TYPE,
  JWT_CLIENT_ASSERTION_TYPE,
  loadPrivateKey,
  PrivateKeyError,
  type PrivateKeyJwk,
  signingAlgorithm,
  type TokenGrant,
  TokenMintError,
  type TokenSource,
  type TokenSourceOptions,
} from "./token_source.ts";
export {
  oidcCredentials,
  type OidcCredentialsOptions,
  type OidcCredentialSource,
  principalInbox,
} from "./nats_credentials.ts";
export { OidcFetchError } from "./_discovery.ts";
export {
  DEVICE_CODE_GRANT_TYPE,
  DeviceFlowError,
  type DeviceFlowErrorCode,
  DeviceFlowErrorCodes,
  deviceFlowLogin,
  type DeviceFlowOptions,
  type DeviceFlowPrompt,
  type DeviceFlowToken,
} from "./device_flow.ts";
