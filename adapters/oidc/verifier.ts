/**
 * Verifies OIDC access tokens (JWTs) against the provider's published keys, for the auth
 * callout: signature, issuer, audience, expiry, not-before and algorithm; that the token is an
 * access token (not an ID token); and that the issuer is reached over https.
 *
 * The keys are found through discovery and kept: an unknown `kid` refetches them (at most
 * once per `minRefetchIntervalMs`), and when the provider is down the kept keys go on
 * verifying tokens that are still valid. jose's `createRemoteJWKSet` is not used because its
 * cache expires; the kept set is wrapped with `createLocalJWKSet` instead.
 *
 * A token that passed is kept, by its exact text, until it expires: agents reconnecting (a
 * storm after a NATS server restart) present the same tokens again, and checking the
 * signature is most of the CPU an authorization costs. Its `exp` and `nbf` are checked again
 * on every use, and the kept tokens are forgotten when the provider's keys change.
 */

import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type ProtectedHeaderParameters,
} from "jose";
import type { Clock } from "../../core/clock.ts";
import { isLoopbackHost } from "../../core/network.ts";
import { systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { discover, fetchJsonObject } from "./_discovery.ts";
import { errorMessage } from "../../core/errors.ts";

/** The JWS algorithms accepted unless configured otherwise. */
export const DEFAULT_ALGORITHMS: readonly string[] = ["RS256", "ES256", "EdDSA", "PS256"];

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /**
   * The expected `iss`, exactly; discovery is read from `<issuer>/.well-known/openid-configuration`.
   * It must be `https://` (plain `http://` only on loopback, for tests): over http, whoever is
   * on the path could serve their own keys and sign any token. See {@link issuerProblem}.
   */
  issuer: string;
  /**
   * Clients whose tokens are access tokens although their JWT header is not `typ: at+jwt`
   * (RFC 9068), matched on the `client_id` claim (`azp` when it has none). Zitadel signs its
   * JWT access tokens with `typ: JWT`, like ID tokens: list the machine users and the CLI's
   * client there. Other tokens without `at+jwt` are refused (an ID token is not a credential).
   * @default []
   */
  accessTokenClients?: readonly string[];
  /** The expected `aud` (one of the token's audiences), e.g. `nats://fleet`. */
  audience: string;
  logger: Logger;
  /**
   * Time limit of each request to the provider.
   * @default 5_000
   */
  fetchTimeoutMs?: number;
  /**
   * Leeway for `exp` and `nbf`, for clocks that disagree a little.
   * @default 5
   */
  clockToleranceSeconds?: number;
  /**
   * Least time between two key refetches caused by unknown `kid`s (a flood of forged
   * tokens cannot turn into a flood of requests to the provider).
   * @default 10_000
   */
  minRefetchIntervalMs?: number;
  /**
   * Refetch the keys in the background when the kept set is older than this, so removed
   * keys stop being trusted; a failed refetch keeps the old set.
   * @default 900_000 (15 min)
   */
  maxKeyAgeMs?: number;
  /** Accepted JWS algorithms. @default DEFAULT_ALGORITHMS */
  algorithms?: readonly string[];
  /**
   * How many verified tokens are kept (the least recently used go first), about 2 KB each.
   * @default 10_000
   */
  verifiedTokenCacheSize?: number;
  /**
   * Its wall clock checks `exp` and `nbf`; its monotonic clock spaces the key refetches.
   * @default systemClock
   */
  clock?: Clock;
}

/** A token that passed every check. */
export interface VerifiedToken {
  /** The token's claims (frozen: a token verified again gets the same object). */
  claims: JWTPayload;
  /** Its `exp` in epoch milliseconds. */
  expiresAt: number;
}

/** Verifies access tokens of one issuer for one audience. */
export interface TokenVerifier {
  /** The configured issuer. */
  readonly issuer: string;
  /** The configured audience. */
  readonly audience: string;
  /**
   * Checks the token; resolves with its claims, or rejects with {@link TokenRejectedError}.
   * @throws {TokenRejectedError} with a `reason` fit for a log line (never for the client).
   */
  verify(token: string): Promise<VerifiedToken>;
  /**
   * Fetches discovery and the keys now (e.g. at start, to fail early on a wrong issuer).
   * @throws {TokenRejectedError} with code `"provider-unreachable"` when that fails.
   */
  refreshKeys(): Promise<void>;
  /** The `kid`s of the kept keys (empty before the first fetch). */
  readonly keyIds: readonly string[];
}

/** Why a token was rejected, as a const object and union (stable for tests and metrics). */
export const RejectionCodes = {
  malformed: "malformed",
  algorithm: "algorithm",
  issuer: "issuer",
  audience: "audience",
  expired: "expired",
  notYetValid: "not-yet-valid",
  claims: "claims",
  signature: "signature",
  unknownKey: "unknown-key",
  providerUnreachable: "provider-unreachable",
  notAccessToken: "not-access-token",
} as const;
/** One of {@link RejectionCodes}. */
export type RejectionCode = typeof RejectionCodes[keyof typeof RejectionCodes];

/**
 * A token was rejected. `reason` says why in words a log line can carry (it never contains
 * the token); the client should only be told "authorization failed".
 */
export class TokenRejectedError extends Error {
  override name = "TokenRejectedError";
  /** Machine-readable kind of rejection. */
  readonly code: RejectionCode;
  /** Why, e.g. `expired at 2026-01-01T00:00:00.000Z (now 2026-01-01T00:00:07.000Z)`. */
  readonly reason: string;
  constructor(code: RejectionCode, reason: string, options?: ErrorOptions) {
    super(`Token rejected: ${reason}`, options);
    this.code = code;
    this.reason = reason;
  }
}

/**
 * Why tokens of `issuer` cannot be trusted, or `undefined`: the issuer must be an https URL
 * (http is accepted on loopback only, for tests).
 */
export function issuerProblem(issuer: string): string | undefined {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return `the issuer "${issuer}" is not a URL`;
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return undefined;
  return `the issuer "${issuer}" is not https: its signing keys would be fetched in clear, ` +
    `and anyone on the network path could replace them and sign any token; use the ` +
    `provider's https:// issuer URL (http:// is accepted only on 127.0.0.1, ::1 or localhost)`;
}

/** The `typ` of an RFC 9068 access token, as written or as a full media type. */
const ACCESS_TOKEN_TYPES = new Set(["at+jwt", "application/at+jwt"]);

/** Creates a {@link TokenVerifier}; nothing is fetched until the first use. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  return new JwksTokenVerifier(options);
}

class JwksTokenVerifier implements TokenVerifier {
  readonly issuer: string;
  readonly audience: string;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #tolerance: number;
  readonly #minRefetchMs: number;
  readonly #maxKeyAgeMs: number;
  readonly #algorithms: string[];
  readonly #accessTokenClients: ReadonlySet<string>;
  readonly #issuerProblem: string | undefined;
  readonly #clock: Clock;
  readonly #verifiedMax: number;
  /** Tokens that passed every check, by their text, least recently used first. */
  readonly #verified = new Map<string, VerifiedToken>();
  #jwksUri: string | undefined;
  #keys: JWK[] | undefined;
  #keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  /** Monotonic ms of the last successful key fetch. */
  #fetchedAt = 0;
  /** Monotonic ms of the last key fetch attempt. */
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;

  constructor(options: TokenVerifierOptions) {
    this.issuer = options.issuer;
    this.audience = options.audience;
    this.#logger = options.logger.with({ component: "oidc-verifier" });
    this.#timeoutMs = options.fetchTimeoutMs ?? 5_000;
    this.#tolerance = options.clockToleranceSeconds ?? 5;
    this.#minRefetchMs = options.minRefetchIntervalMs ?? 10_000;
    this.#maxKeyAgeMs = options.maxKeyAgeMs ?? 15 * 60_000;
    this.#algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
    this.#accessTokenClients = new Set(options.accessTokenClients ?? []);
    this.#issuerProblem = issuerProblem(options.issuer);
    this.#clock = options.clock ?? systemClock;
    this.#verifiedMax = options.verifiedTokenCacheSize ?? 10_000;
  }

  get keyIds(): readonly string[] {
    return (this.#keys ?? []).flatMap((key) => key.kid === undefined ? [] : [key.kid]);
  }

  refreshKeys(): Promise<void> {
    this.#inFlight ??= this.#fetchKeys().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async verify(token: string): Promise<VerifiedToken> {
    if (this.#issuerProblem !== undefined) {
      throw new TokenRejectedError(RejectionCodes.issuer, this.#issuerProblem);
    }
    const kept = this.#keptResult(token);
    if (kept !== undefined) {
      this.#maybeRefreshInBackground();
      return kept;
    }
    const { header, payload } = this.#decode(token);
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    const keyName = kid === undefined ? "without kid" : `kid=${kid}`;
    if (header.alg === undefined || !this.#algorithms.includes(header.alg)) {
      throw new TokenRejectedError(
        RejectionCodes.algorithm,
        `algorithm ${JSON.stringify(header.alg)} is not allowed (allowed: ` +
          `${this.#algorithms.join(", ")})`,
      );
    }
    // Checked before any key lookup: a foreign token gets a clear reason and cannot make
    // the verifier refetch keys.
    if (payload.iss !== this.issuer) {
      throw new TokenRejectedError(
        RejectionCodes.issuer,
        `issuer ${JSON.stringify(payload.iss)} is not the configured "${this.issuer}"`,
      );
    }
    this.#checkAccessToken(header, payload);
    await this.#ensureKey(kid, keyName);
    const keySet = this.#keySet;
    if (keySet === undefined) {
      throw new TokenRejectedError(
        RejectionCodes.providerUnreachable,
        `provider unreachable and no cached key`,
      );
    }
    try {
      const { payload: claims } = await jwtVerify(token, keySet, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#tolerance,
        requiredClaims: ["exp"],
        currentDate: new Date(this.#clock.now()),
      });
      if (typeof claims.exp !== "number") {
        throw new TokenRejectedError(RejectionCodes.claims, `the token has no numeric exp`);
      }
      this.#maybeRefreshInBackground();
      return this.#keep(token, deepFreeze({ claims, expiresAt: claims.exp * 1000 }));
    } catch (err) {
      throw this.#rejection(err, payload, keyName);
    }
  }

  /**
   * The result of an earlier verification of `token`, while it is still within its `nbf` and
   * `exp` (without leeway: near those, the full check decides, with it).
   */
  #keptResult(token: string): VerifiedToken | undefined {
    const kept = this.#verified.get(token);
    if (kept === undefined) return undefined;
    this.#verified.delete(token);
    const now = this.#clock.now();
    const nbf = kept.claims.nbf;
    if (now >= kept.expiresAt || (typeof nbf === "number" && now < nbf * 1000)) return undefined;
    this.#verified.set(token, kept); // now the most recently used
    return kept;
  }

  #keep(token: string, verified: VerifiedToken): VerifiedToken {
    if (this.#verifiedMax <= 0) return verified;
    if (this.#verified.size >= this.#verifiedMax) {
      const oldest = this.#verified.keys().next();
      if (!oldest.done) this.#verified.delete(oldest.value);
    }
    this.#verified.set(token, verified);
    return verified;
  }

  /**
   * Refuses a token that is not an access token: its header says `typ: at+jwt`, or its
   * client is one of the configured {@link TokenVerifierOptions.accessTokenClients}. Checked
   * before any key lookup; an accepted token still has its signature checked.
   */
  #checkAccessToken(header: ProtectedHeaderParameters, payload: JWTPayload): void {
    const typ = typeof header.typ === "string" ? header.typ.toLowerCase() : undefined;
    if (typ !== undefined && ACCESS_TOKEN_TYPES.has(typ)) return;
    const client = typeof payload.client_id === "string"
      ? payload.client_id
      : typeof payload.azp === "string"
      ? payload.azp
      : undefined;
    if (client !== undefined && this.#accessTokenClients.has(client)) return;
    const type = typ === undefined ? "no typ" : `typ ${JSON.stringify(header.typ)}`;
    const from = client === undefined
      ? "names no client (client_id or azp)"
      : `is from client ${JSON.stringify(client)}, which is not in access_token_clients`;
    throw new TokenRejectedError(
      RejectionCodes.notAccessToken,
      `not an access token: its header has ${type}, not "at+jwt" (RFC 9068), and it ${from}; ` +
        `an ID token is never accepted. A provider whose access tokens say typ "JWT" ` +
        `(Zitadel) needs their client ids in [oidc] access_token_clients`,
    );
  }

  #decode(token: string): { header: ProtectedHeaderParameters; payload: JWTPayload } {
    try {
      return { header: decodeProtectedHeader(token), payload: decodeJwt(token) };
    } catch (err) {
      const what = token.split(".").length === 5
        ? "an encrypted token (JWE) is not supported"
        : `not a signed JWT (${errorMessage(err)})`;
      throw new TokenRejectedError(RejectionCodes.malformed, what, { cause: err });
    }
  }

  /** Makes sure the key set is loaded and, when possible, holds `kid`. */
  async #ensureKey(kid: string | undefined, keyName: string): Promise<void> {
    if (this.#keys === undefined) {
      try {
        await this.refreshKeys();
      } catch (err) {
        throw new TokenRejectedError(
          RejectionCodes.providerUnreachable,
          `provider unreachable and no cached key (${keyName}): ${errorMessage(err)}`,
          { cause: err },
        );
      }
      return;
    }
    if (kid === undefined || this.#hasKey(kid)) return;
    const sinceLastMs = this.#clock.monotonic() - this.#lastAttemptAt;
    if (sinceLastMs < this.#minRefetchMs && this.#inFlight === undefined) {
      throw new TokenRejectedError(
        RejectionCodes.unknownKey,
        `unknown signing key ${keyName} (JWKS refreshed ${Math.round(sinceLastMs / 1000)} s ago; ` +
          `next refetch allowed in ${Math.ceil((this.#minRefetchMs - sinceLastMs) / 1000)} s)`,
      );
    }
    try {
      await this.refreshKeys();
    } catch (err) {
      throw new TokenRejectedError(
        RejectionCodes.providerUnreachable,
        `provider unreachable and no cached key ${keyName} ` +
          `(${this.#keys.length} other keys cached): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    if (!this.#hasKey(kid)) {
      throw new TokenRejectedError(
        RejectionCodes.unknownKey,
        `unknown signing key ${keyName} (JWKS refreshed; it has ${this.keyIds.join(", ")})`,
      );
    }
  }

  #hasKey(kid: string): boolean {
    return this.#keys?.some((key) => key.kid === kid) ?? false;
  }

  #maybeRefreshInBackground(): void {
    const now = this.#clock.monotonic();
    if (now - this.#fetchedAt < this.#maxKeyAgeMs) return;
    if (now - this.#lastAttemptAt < this.#minRefetchMs) return;
    this.refreshKeys().catch((err: unknown) => {
      this.#logger.warn("Cannot refresh the provider's signing keys; keeping the cached ones", {
        issuer: this.issuer,
        error: errorMessage(err),
      });
    });
  }

  async #fetchKeys(): Promise<void> {
    const started = this.#clock.monotonic();
    this.#lastAttemptAt = started;
    if (this.#jwksUri === undefined) {
      const document = await discover(this.issuer, this.#timeoutMs);
      if (typeof document.jwks_uri !== "string" || document.jwks_uri === "") {
        throw new Error(`the discovery document of ${this.issuer} has no jwks_uri`);
      }
      this.#jwksUri = document.jwks_uri;
    }
    const jwksUri = this.#jwksUri;
    let body: Record<string, unknown>;
    try {
      body = await fetchJsonObject(jwksUri, this.#timeoutMs);
    } catch (err) {
      this.#jwksUri = undefined; // rediscover next time: the JWKS may have moved
      throw err;
    }
    const keys = body.keys;
    if (!Array.isArray(keys)) throw new Error(`${jwksUri} is not a JWK set (no "keys" array)`);
    const usable = keys.filter((key): key is JWK =>
      typeof key === "object" && key !== null && typeof (key as JWK).kty === "string" &&
      ((key as JWK).use === undefined || (key as JWK).use === "sig")
    );
    const keySet: JSONWebKeySet = { keys: usable };
    const before = this.keyIds.join(",");
    // A token checked with a key that is gone, or changed, must not pass on memory.
    if (JSON.stringify(usable) !== JSON.stringify(this.#keys)) this.#verified.clear();
    this.#keySet = createLocalJWKSet(keySet);
    this.#keys = usable;
    this.#fetchedAt = this.#clock.monotonic();
    if (this.keyIds.join(",") !== before) {
      this.#logger.info(`Loaded ${usable.length} signing keys of ${this.issuer}`, {
        jwksUri,
        kids: this.keyIds.join(","),
        ms: Math.round(this.#clock.monotonic() - started),
      });
    }
  }

  #rejection(err: unknown, payload: JWTPayload, keyName: string): TokenRejectedError {
    if (err instanceof TokenRejectedError) return err;
    const now = new Date(this.#clock.now()).toISOString();
    if (err instanceof joseErrors.JWTExpired) {
      const exp = typeof payload.exp === "number"
        ? new Date(payload.exp * 1000).toISOString()
        : "?";
      return new TokenRejectedError(RejectionCodes.expired, `expired at ${exp} (now ${now})`, {
        cause: err,
      });
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case "aud":
          return new TokenRejectedError(
            RejectionCodes.audience,
            `audience ${JSON.stringify(payload.aud)} does not include the configured ` +
              `"${this.audience}"`,
            { cause: err },
          );
        case "iss":
          return new TokenRejectedError(
            RejectionCodes.issuer,
            `issuer ${JSON.stringify(payload.iss)} is not the configured "${this.issuer}"`,
            { cause: err },
          );
        case "nbf": {
          const nbf = typeof payload.nbf === "number"
            ? new Date(payload.nbf * 1000).toISOString()
            : JSON.stringify(payload.nbf);
          return new TokenRejectedError(
            RejectionCodes.notYetValid,
            `not valid before ${nbf} (now ${now})`,
            { cause: err },
          );
        }
        default:
          return new TokenRejectedError(
            RejectionCodes.claims,
            `claim "${err.claim}" is invalid (${err.reason}): ${err.message}`,
            { cause: err },
          );
      }
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      return new TokenRejectedError(
        RejectionCodes.signature,
        `signature does not verify with the issuer's key ${keyName}`,
        { cause: err },
      );
    }
    if (err instanceof joseErrors.JWKSNoMatchingKey) {
      return new TokenRejectedError(
        RejectionCodes.unknownKey,
        `no signing key of the issuer matches ${keyName}`,
        { cause: err },
      );
    }
    if (err instanceof joseErrors.JWKSMultipleMatchingKeys) {
      return new TokenRejectedError(
        RejectionCodes.unknownKey,
        `several signing keys of the issuer match ${keyName}; the token must name its kid`,
        { cause: err },
      );
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) {
      return new TokenRejectedError(RejectionCodes.algorithm, err.message, { cause: err });
    }
    return new TokenRejectedError(RejectionCodes.malformed, errorMessage(err), { cause: err });
  }
}

/** `value`, with it and everything in it frozen: kept claims are shared by every caller. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
