/**
 * Mints OIDC access tokens for an agent or the operator from a private key: the RFC 7523
 * JWT-bearer grant (how Zitadel machine users log in with a key) or `client_credentials`
 * with `private_key_jwt` client authentication. Tokens are cached and re-minted shortly
 * before they expire.
 */

import { createPrivateKey } from "node:crypto";
import {
  calculateJwkThumbprint,
  decodeJwt,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import type { Clock } from "../../core/clock.ts";
import { keyExpiryWarning } from "../../core/key_expiry.ts";
import { systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { zitadelScope } from "../../core/zitadel.ts";
import { discover, OidcFetchError } from "./_discovery.ts";
import { errorMessage } from "../../core/errors.ts";

/** `grant_type` of the RFC 7523 JWT-bearer authorization grant. */
export const JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** `client_assertion_type` of RFC 7523 client authentication (`private_key_jwt`). */
export const JWT_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** How a {@link TokenSource} asks for a token. */
export type TokenGrant = "jwt-bearer" | "client-credentials";

/** Options of {@link createTokenSource}. */
export interface TokenSourceOptions {
  /** The provider's issuer URL, e.g. `https://auth.example.com`; discovery is read from it. */
  issuer: string;
  /** The client id (Zitadel: the machine user's `userId`); `iss` and `sub` of the assertion. */
  clientId: string;
  /** The private key the assertions are signed with; its `kid` goes into their header. */
  privateKeyJwk: PrivateKeyJwk;
  /**
   * The file `privateKeyJwk` was loaded from: read again before each mint, so a key replaced
   * on disk (`fleet device rotate-key`) signs from the next token on, without a restart. An
   * unreadable file keeps the key in use (and is logged).
   */
  keyFile?: string;
  /**
   * `jwt-bearer`: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with the key-signed
   * assertion (`aud` = issuer) and no separate client authentication (Zitadel machine keys).
   * `client-credentials`: `grant_type=client_credentials` authenticated with a key-signed
   * `client_assertion` (`aud` = token endpoint).
   */
  grant: TokenGrant;
  /** Resource indicator (RFC 8707) sent as `resource`, e.g. `nats://fleet`. */
  audience?: string;
  /** Space-separated scopes sent as `scope`. */
  scope?: string;
  /**
   * The provider is Zitadel and this is the Fleet project's id: the request also asks for the
   * project as audience and for its roles ({@link zitadelScope}), which Zitadel otherwise
   * leaves out of a machine user's token.
   */
  zitadelProjectId?: string;
  logger: Logger;
  /**
   * Re-mint a cached token this long before it expires, capped at half the token's
   * lifetime so a short-lived token is still reused.
   * @default 60
   */
  refreshBeforeSeconds?: number;
  /**
   * Time limit of each request to the provider.
   * @default 10_000
   */
  fetchTimeoutMs?: number;
  /**
   * Dates the token's expiry and refresh time, and the assertions it signs.
   * @default systemClock
   */
  clock?: Clock;
}

/** A cached, self-renewing access token. */
export interface TokenSource {
  /** The client the tokens are minted for. */
  readonly clientId: string;
  /** The provider's issuer URL. */
  readonly issuer: string;
  /**
   * When the cached token expires (epoch ms, by the local clock: mint time + `expires_in`),
   * or `undefined` before the first mint.
   */
  readonly expiresAt: number | undefined;
  /** When {@link token} re-mints (epoch ms): `expiresAt` minus the refresh margin. */
  readonly refreshAt: number | undefined;
  /**
   * The cached token, minted first when there is none or it is within the refresh margin
   * of its expiry. When re-minting fails while the cached token has not expired yet, the
   * cached one is returned (and the failure logged).
   * @throws {TokenMintError} when no unexpired token can be had.
   */
  token(): Promise<string>;
  /** The cached token as it is, even when stale; `undefined` before the first mint. */
  current(): string | undefined;
  /**
   * Mints a new token now (concurrent calls share one request).
   * @throws {TokenMintError}
   */
  refresh(): Promise<void>;
}

/** The provider did not hand out a token; the message names the issuer and its answer. */
export class TokenMintError extends Error {
  override name = "TokenMintError";
  /** The provider's issuer URL. */
  readonly issuer: string;
  /** The client that asked. */
  readonly clientId: string;
  /** The provider's `error` code (`invalid_client`, `invalid_grant`, ...), when it answered. */
  readonly error: string | undefined;
  /** The provider's `error_description`, when it gave one. */
  readonly errorDescription: string | undefined;
  /** HTTP status of the token response, when there was one. */
  readonly status: number | undefined;
  constructor(
    message: string,
    fields: {
      issuer: string;
      clientId: string;
      error?: string | undefined;
      errorDescription?: string | undefined;
      status?: number | undefined;
    },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.issuer = fields.issuer;
    this.clientId = fields.clientId;
    this.error = fields.error;
    this.errorDescription = fields.errorDescription;
    this.status = fields.status;
  }
}

/** A key file could not be read or understood. */
export class PrivateKeyError extends Error {
  override name = "PrivateKeyError";
}

/** A private key as `importJWK` gives it. */
type SigningKey = Exclude<Awaited<ReturnType<typeof importJWK>>, Uint8Array>;

/** Lifetime of the assertions this module signs (RFC 7523 wants them short). */
const ASSERTION_LIFETIME_SECONDS = 5 * 60;

/**
 * Creates a {@link TokenSource}. Nothing is fetched until the first {@link TokenSource.token}
 * or {@link TokenSource.refresh}.
 */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  return new CachingTokenSource(options);
}

class CachingTokenSource implements TokenSource {
  readonly clientId: string;
  readonly issuer: string;
  readonly #options: TokenSourceOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #refreshBeforeMs: number;
  #token: string | undefined;
  #expiresAt: number | undefined;
  #refreshAt: number | undefined;
  #tokenEndpoint: string | undefined;
  #key: Promise<SigningKey> | undefined;
  #jwk: PrivateKeyJwk;
  #inFlight: Promise<void> | undefined;

  constructor(options: TokenSourceOptions) {
    this.#options = options;
    this.#jwk = options.privateKeyJwk;
    this.clientId = options.clientId;
    this.issuer = options.issuer;
    this.#logger = options.logger.with({ component: "oidc-token" });
    this.#clock = options.clock ?? systemClock;
    this.#timeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.#refreshBeforeMs = (options.refreshBeforeSeconds ?? 60) * 1000;
  }

  get expiresAt(): number | undefined {
    return this.#expiresAt;
  }

  get refreshAt(): number | undefined {
    return this.#refreshAt;
  }

  current(): string | undefined {
    return this.#token;
  }

  async token(): Promise<string> {
    const now = this.#clock.now();
    if (this.#token !== undefined && this.#refreshAt !== undefined && now < this.#refreshAt) {
      return this.#token;
    }
    try {
      await this.refresh();
    } catch (err) {
      const cached = this.#token;
      if (
        cached !== undefined && this.#expiresAt !== undefined && this.#clock.now() < this.#expiresAt
      ) {
        this.#logger.warn(
          `Cannot renew the access token yet; using the cached one until it expires`,
          { expiresAt: new Date(this.#expiresAt).toISOString(), error: errorMessage(err) },
        );
        return cached;
      }
      throw err;
    }
    const token = this.#token;
    if (token === undefined) throw this.#error("no token after a successful refresh", {});
    return token;
  }

  refresh(): Promise<void> {
    this.#inFlight ??= this.#mint().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #mint(): Promise<void> {
    const { grant, audience, zitadelProjectId } = this.#options;
    const scope = zitadelProjectId === undefined
      ? this.#options.scope
      : zitadelScope(zitadelProjectId, this.#options.scope);
    const started = this.#clock.monotonic();
    await this.#reloadKey();
    const tokenEndpoint = await this.#endpoint();
    const assertion = await this.#assertion(
      grant === "jwt-bearer" ? this.issuer : tokenEndpoint,
    );
    const body = new URLSearchParams();
    if (grant === "jwt-bearer") {
      body.set("grant_type", JWT_BEARER_GRANT_TYPE);
      body.set("assertion", assertion);
    } else {
      body.set("grant_type", "client_credentials");
      body.set("client_assertion_type", JWT_CLIENT_ASSERTION_TYPE);
      body.set("client_assertion", assertion);
    }
    if (scope !== undefined) body.set("scope", scope);
    if (audience !== undefined) body.set("resource", audience);

    const sentAt = this.#clock.now();
    let response: Response;
    try {
      response = await fetch(tokenEndpoint, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body,
        // Real time, not the clock's: it bounds real I/O, which a test's clock does not drive.
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw this.#error(`provider unreachable at ${tokenEndpoint} (${errorMessage(err)})`, {}, err);
    }
    const text = await response.text().catch(() => "");
    const json = parseJsonObject(text);
    if (!response.ok) {
      const error = typeof json?.error === "string" ? json.error : undefined;
      const description = typeof json?.error_description === "string"
        ? json.error_description
        : undefined;
      const what = error !== undefined
        ? `${error}${description !== undefined ? ` (${description})` : ""}`
        : `HTTP ${response.status} ${text.slice(0, 200)}`.trim();
      throw this.#error(what, { error, errorDescription: description, status: response.status });
    }
    const accessToken = json?.access_token;
    if (typeof accessToken !== "string" || accessToken === "") {
      throw this.#error(`the token response has no access_token`, { status: response.status });
    }
    const expiresAt = tokenExpiry(accessToken, json?.expires_in, sentAt);
    if (expiresAt === undefined) {
      throw this.#error(
        `the token response says neither when the token expires (expires_in) nor does the ` +
          `token carry an exp claim`,
        { status: response.status },
      );
    }
    const margin = Math.min(this.#refreshBeforeMs, Math.max(0, (expiresAt - sentAt) / 2));
    this.#token = accessToken;
    this.#expiresAt = expiresAt;
    this.#refreshAt = expiresAt - margin;
    this.#logger.debug("Minted an access token", {
      clientId: this.clientId,
      grant,
      expiresAt: new Date(expiresAt).toISOString(),
      ms: Math.round(this.#clock.monotonic() - started),
    });
  }

  /** Picks up a key replaced on disk, and warns while the one in use nears its expiry. */
  async #reloadKey(): Promise<void> {
    const file = this.#options.keyFile;
    if (file !== undefined) {
      try {
        const jwk = await loadPrivateKey(file);
        if (jwk.kid !== this.#jwk.kid) {
          this.#logger.info("Signing with the new key from the key file", {
            keyFile: file,
            kid: jwk.kid,
            previousKid: this.#jwk.kid,
          });
          this.#jwk = jwk;
          this.#key = undefined;
        }
      } catch (err) {
        this.#logger.warn("Cannot read the key file again; signing with the key read before", {
          keyFile: file,
          error: errorMessage(err),
        });
      }
    }
    const expiresAt = this.#jwk.expiresAt === undefined
      ? Number.NaN
      : Date.parse(this.#jwk.expiresAt);
    const warning = Number.isNaN(expiresAt)
      ? undefined
      : keyExpiryWarning(expiresAt, this.#clock.now());
    if (warning !== undefined) {
      this.#logger.warn(warning, { clientId: this.clientId, kid: this.#jwk.kid });
    }
  }

  async #endpoint(): Promise<string> {
    if (this.#tokenEndpoint !== undefined) return this.#tokenEndpoint;
    let endpoint: unknown;
    try {
      const document = await discover(this.issuer, this.#timeoutMs);
      endpoint = document.token_endpoint;
    } catch (err) {
      const what = err instanceof OidcFetchError ? err.message : errorMessage(err);
      throw this.#error(what, {}, err);
    }
    if (typeof endpoint !== "string" || endpoint === "") {
      throw this.#error(`its discovery document has no token_endpoint`, {});
    }
    this.#tokenEndpoint = endpoint;
    return endpoint;
  }

  async #assertion(audience: string): Promise<string> {
    const jwk = jwkMembers(this.#jwk);
    const alg = signingAlgorithm(jwk);
    this.#key ??= importJWK(jwk, alg).then((key) => {
      if (key instanceof Uint8Array) {
        throw new PrivateKeyError(`The key of client "${this.clientId}" is not a private key`);
      }
      return key;
    });
    let key: SigningKey;
    try {
      key = await this.#key;
    } catch (err) {
      this.#key = undefined;
      throw this.#error(`its private key cannot be used (${errorMessage(err)})`, {}, err);
    }
    const now = Math.floor(this.#clock.now() / 1000);
    return await new SignJWT({})
      .setProtectedHeader({ alg, typ: "JWT", ...(jwk.kid !== undefined ? { kid: jwk.kid } : {}) })
      .setIssuer(this.clientId)
      .setSubject(this.clientId)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_SECONDS)
      .setJti(crypto.randomUUID())
      .sign(key);
  }

  #error(
    what: string,
    fields: { error?: string | undefined; errorDescription?: string | undefined; status?: number },
    cause?: unknown,
  ): TokenMintError {
    return new TokenMintError(
      `Cannot get an access token for client "${this.clientId}" from ${this.issuer}: ${what}`,
      { issuer: this.issuer, clientId: this.clientId, ...fields },
      cause === undefined ? undefined : { cause },
    );
  }
}

/** The JWK members only (a key loaded by {@link loadPrivateKey} may carry more). */
function jwkMembers(jwk: PrivateKeyJwk): JWK {
  const copy = { ...jwk };
  delete copy.clientId;
  delete copy.expiresAt;
  return copy;
}

/**
 * `now + expires_in` by the local clock (right even when the provider's clock is off),
 * else the token's own `exp` when it is a JWT.
 */
function tokenExpiry(token: string, expiresIn: unknown, now: number): number | undefined {
  if (typeof expiresIn === "number" && expiresIn > 0) return now + expiresIn * 1000;
  let payload: JWTPayload | undefined;
  try {
    payload = decodeJwt(token);
  } catch {
    payload = undefined; // an opaque token: rely on expires_in
  }
  return typeof payload?.exp === "number" ? payload.exp * 1000 : undefined;
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/** The JWS algorithm for a key: its `alg`, or the usual one for its type. */
export function signingAlgorithm(jwk: JWK): string {
  if (jwk.alg !== undefined) return jwk.alg;
  switch (jwk.kty) {
    case "RSA":
      return "RS256";
    case "EC":
      switch (jwk.crv) {
        case "P-256":
          return "ES256";
        case "P-384":
          return "ES384";
        case "P-521":
          return "ES512";
      }
      break;
    case "OKP":
      if (jwk.crv === "Ed25519") return "EdDSA";
      break;
  }
  throw new PrivateKeyError(
    `Cannot tell the signing algorithm of a key of type "${jwk.kty}"` +
      `${
        jwk.crv !== undefined ? ` (curve "${jwk.crv}")` : ""
      }: use an RSA, P-256 or Ed25519 key, ` +
      `or set "alg" in the JWK`,
  );
}

/** A private key as a JWK; `clientId` is set when the key file names its client. */
export type PrivateKeyJwk = JWK & {
  /** The client the key belongs to (Zitadel key files: `userId`). */
  clientId?: string;
  /** When the provider stops accepting the key, ISO 8601 (Zitadel key files: `expirationDate`). */
  expiresAt?: string;
};

/**
 * Loads a private key for {@link createTokenSource}, from a file path or given inline:
 * - a JWK (JSON object with `kty`), used as it is;
 * - a Zitadel machine-key file (`{"type":"serviceaccount","keyId","key","userId"}`):
 *   `keyId` becomes `kid`, `userId` becomes `clientId`, `expirationDate` becomes `expiresAt`,
 *   `key` is the PEM;
 * - a PEM private key (PKCS#8 `BEGIN PRIVATE KEY`, also PKCS#1 `BEGIN RSA PRIVATE KEY` and
 *   SEC1 `BEGIN EC PRIVATE KEY`), given the JWK thumbprint as `kid`.
 *
 * @throws {PrivateKeyError} naming the file and what is wrong with it.
 */
export async function loadPrivateKey(pathOrInline: string): Promise<PrivateKeyJwk> {
  const inline = pathOrInline.trimStart();
  const isInline = inline.startsWith("{") || inline.startsWith("-----BEGIN");
  const where = isInline ? "the inline private key" : `the private key file "${pathOrInline}"`;
  let text: string;
  if (isInline) {
    text = inline;
  } else {
    try {
      text = await Deno.readTextFile(pathOrInline);
    } catch (err) {
      throw new PrivateKeyError(`Cannot read ${where}: ${errorMessage(err)}`, { cause: err });
    }
  }
  text = text.trim();
  if (text.startsWith("-----BEGIN")) return await pemToJwk(text, where, undefined);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PrivateKeyError(
      `Cannot parse ${where}: expected a JWK, a Zitadel key JSON or a PEM private key ` +
        `(${errorMessage(err)})`,
      { cause: err },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PrivateKeyError(`Cannot use ${where}: expected a JSON object`);
  }
  const fields = value as Record<string, unknown>;
  if (typeof fields.key === "string" && fields.key.includes("-----BEGIN")) {
    const keyId = typeof fields.keyId === "string" ? fields.keyId : undefined;
    const jwk = await pemToJwk(fields.key, where, keyId);
    return {
      ...jwk,
      ...(typeof fields.userId === "string" ? { clientId: fields.userId } : {}),
      ...(typeof fields.expirationDate === "string" ? { expiresAt: fields.expirationDate } : {}),
    };
  }
  if (typeof fields.kty === "string") {
    const jwk = fields as JWK;
    if (jwk.d === undefined) {
      throw new PrivateKeyError(`Cannot use ${where}: the JWK is a public key (it has no "d")`);
    }
    return jwk.kid !== undefined ? jwk : { ...jwk, kid: await calculateJwkThumbprint(jwk) };
  }
  throw new PrivateKeyError(
    `Cannot use ${where}: it is neither a JWK (no "kty") nor a Zitadel key file (no "key")`,
  );
}

async function pemToJwk(
  pem: string,
  where: string,
  kid: string | undefined,
): Promise<PrivateKeyJwk> {
  let jwk: JWK;
  try {
    jwk = createPrivateKey({ key: pem, format: "pem" }).export({ format: "jwk" }) as JWK;
  } catch (err) {
    throw new PrivateKeyError(`Cannot read the PEM key in ${where}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return { ...jwk, kid: kid ?? await calculateJwkThumbprint(jwk) };
}
