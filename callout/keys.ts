/**
 * The callout's keys: the account signing key that issues user JWTs, with a fast native
 * Ed25519 signer, the optional curve key (xkey) that encrypts the exchange with the
 * server, a verifying decoder of the server's authorization requests, and the encoder of
 * the answers (the user JWT inside the authorization response JWT).
 *
 * Why not nkeys alone: `@nats-io/nkeys` 2.0.3 signs and verifies with pure-JS tweetnacl
 * and re-derives the key pair from the seed on every call (~9 ms per signature here, ~25 ms
 * per `encodeUser`). `@nats-io/jwt` calls `KeyPair.sign()` synchronously, so WebCrypto's
 * async `crypto.subtle.sign` cannot be plugged in; Deno's `node:crypto` Ed25519 is native,
 * synchronous and produces the same signatures in ~0.02 ms, so {@link AccountSigningKey}
 * is a `KeyPair` backed by it and the library encodes the JWTs as usual.
 */

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as ed25519Sign,
  verify as ed25519Verify,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { createAccount, createCurve, fromCurveSeed, fromSeed, type KeyPair } from "@nats-io/nkeys";
import type { AuthorizationRequest, ClaimsData, User } from "@nats-io/jwt";

/** A key, seed or signed message that cannot be used; the message says which and why. */
export class CalloutKeyError extends Error {
  override name = "CalloutKeyError";
}

/** nkeys prefix bytes (the first base32 character of the encoded form). */
const Prefix = {
  seed: 18 << 3, // S
  server: 13 << 3, // N
  account: 0, // A
  user: 20 << 3, // U
  curve: 23 << 3, // X
} as const;

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32Decode(text: string): Uint8Array | undefined {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

/** CRC-16/XMODEM, the nkeys checksum. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/** Base32 + checksum of an encoded nkey; undefined when either is wrong. */
function decodeChecked(text: string): Uint8Array | undefined {
  const raw = base32Decode(text);
  if (!raw || raw.length < 3) return undefined;
  const body = raw.subarray(0, raw.length - 2);
  const sum = raw[raw.length - 2]! | (raw[raw.length - 1]! << 8);
  return crc16(body) === sum ? body : undefined;
}

/** The raw 32 bytes of a seed of `kind` (`SA...` account, `SX...` curve), or undefined. */
function rawSeed(seed: string, kind: number): Uint8Array | undefined {
  const body = decodeChecked(seed);
  if (!body || body.length !== 34) return undefined;
  if ((body[0]! & 0xf8) !== Prefix.seed) return undefined;
  const prefix = ((body[0]! & 0x07) << 5) | ((body[1]! & 0xf8) >> 3);
  return prefix === kind ? body.slice(2) : undefined;
}

/** The raw 32-byte Ed25519 public key of an encoded public nkey of `kind`, or undefined. */
function rawPublicKey(key: string, kind: number): Uint8Array | undefined {
  const body = decodeChecked(key);
  if (!body || body.length !== 33 || body[0] !== kind) return undefined;
  return body.slice(1);
}

const PKCS8_ED25519 = [
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
];
const SPKI_ED25519 = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

function ed25519PublicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.from([...SPKI_ED25519, ...raw]),
    format: "der",
    type: "spki",
  });
}

/** Verifying keys of the last servers seen, by nkey (a restarted nats-server has a new one). */
const serverKeys = new Map<string, KeyObject>();
const SERVER_KEYS_KEPT = 16;

/**
 * The verifying key of the server nkey `key` (`N...`), or undefined when it is not one; kept,
 * since every request names its server twice and decoding a key costs more than verifying.
 */
function serverKey(key: string): KeyObject | undefined {
  const kept = serverKeys.get(key);
  if (kept) return kept;
  const raw = rawPublicKey(key, Prefix.server);
  if (!raw) return undefined;
  const oldest = serverKeys.keys().next();
  if (serverKeys.size >= SERVER_KEYS_KEPT && !oldest.done) serverKeys.delete(oldest.value);
  const object = ed25519PublicKeyObject(raw);
  serverKeys.set(key, object);
  return object;
}

/**
 * The account signing key (`SA...`) as an nkeys `KeyPair` whose `sign`/`verify` run on
 * native Ed25519 and whose public and private keys are derived once: pass it to
 * `encodeUser` / `encodeAuthorizationResponse` as the issuer.
 */
export class AccountSigningKey implements KeyPair {
  readonly #privateKey: KeyObject;
  readonly #publicKeyObject: KeyObject;
  readonly #publicKey: string;
  #seed: Uint8Array | undefined;
  #encodedPrivate: Uint8Array | undefined;

  private constructor(seed: Uint8Array, raw: Uint8Array) {
    this.#seed = seed;
    this.#privateKey = createPrivateKey({
      key: Buffer.from([...PKCS8_ED25519, ...raw]),
      format: "der",
      type: "pkcs8",
    });
    this.#publicKeyObject = createPublicKey(this.#privateKey);
    // Derived once with nkeys (a few ms) and cross-checked with the native key below.
    this.#publicKey = fromSeed(seed).getPublicKey();
    const nativeRaw = this.#publicKeyObject.export({ format: "der", type: "spki" }).subarray(
      SPKI_ED25519.length,
    );
    const expected = rawPublicKey(this.#publicKey, Prefix.account);
    if (!expected || !Buffer.from(expected).equals(nativeRaw)) {
      throw new CalloutKeyError("The account seed decodes to inconsistent keys");
    }
  }

  /**
   * Loads an account seed (`SA...`, as written by `nsc generate nkey --account` or
   * `fleet callout keys`).
   *
   * @throws {CalloutKeyError} when the text is not an account seed.
   */
  static fromSeed(seed: string): AccountSigningKey {
    const text = seed.trim();
    const raw = rawSeed(text, Prefix.account);
    if (!raw) {
      throw new CalloutKeyError(
        `not an account seed: expected the 58 characters of an nkey seed starting with "SA"`,
      );
    }
    return new AccountSigningKey(new TextEncoder().encode(text), raw);
  }

  /** The account public key (`A...`): the `issuer` of the server's `auth_callout` block. */
  getPublicKey(): string {
    return this.#publicKey;
  }

  getPrivateKey(): Uint8Array {
    const seed = this.#liveSeed();
    this.#encodedPrivate ??= fromSeed(seed).getPrivateKey();
    return this.#encodedPrivate;
  }

  getSeed(): Uint8Array {
    return this.#liveSeed();
  }

  sign(input: Uint8Array): Uint8Array {
    this.#liveSeed();
    return new Uint8Array(ed25519Sign(null, input, this.#privateKey));
  }

  verify(input: Uint8Array, sig: Uint8Array): boolean {
    return ed25519Verify(null, input, this.#publicKeyObject, sig);
  }

  clear(): void {
    this.#seed?.fill(0);
    this.#seed = undefined;
    this.#encodedPrivate?.fill(0);
    this.#encodedPrivate = undefined;
  }

  seal(): Uint8Array {
    throw new CalloutKeyError("An account key cannot encrypt; use the xkey");
  }

  open(): Uint8Array | null {
    throw new CalloutKeyError("An account key cannot decrypt; use the xkey");
  }

  #liveSeed(): Uint8Array {
    if (!this.#seed) throw new CalloutKeyError("The account signing key was cleared");
    return this.#seed;
  }
}

/**
 * Loads a curve seed (`SX...`, as written by `nsc generate nkey --curve` or `fleet callout
 * keys`) as the nkeys curve key pair that opens requests and seals responses.
 *
 * @throws {CalloutKeyError} when the text is not a curve seed.
 */
export function curveKeyFromSeed(seed: string): KeyPair {
  const text = seed.trim();
  if (!rawSeed(text, Prefix.curve)) {
    throw new CalloutKeyError(
      `not a curve (xkey) seed: expected the 58 characters of an nkey seed starting with "SX"`,
    );
  }
  return fromCurveSeed(new TextEncoder().encode(text));
}

/** New seeds for `fleet callout keys`: an account signing seed and a curve seed. */
export function generateSeeds(): { issuerSeed: string; xkeySeed: string } {
  const decoder = new TextDecoder();
  return {
    issuerSeed: decoder.decode(createAccount().getSeed()),
    xkeySeed: decoder.decode(createCurve().getSeed()),
  };
}

/** The public key (`A...` or `X...`) of an account or curve seed. */
export function publicKeyOfSeed(seed: string): string {
  const text = seed.trim();
  if (rawSeed(text, Prefix.curve)) return curveKeyFromSeed(text).getPublicKey();
  return AccountSigningKey.fromSeed(text).getPublicKey();
}

function base64UrlDecode(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, "base64url"));
}

function parseJsonPart(bytes: Uint8Array | undefined): Record<string, unknown> | undefined {
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decodes the server's authorization request JWT and checks it the way `@nats-io/jwt`'s
 * `decode()` does (a NATS `ed25519-nkey` JWT whose signature verifies against its `iss`),
 * with the signature checked natively instead of in tweetnacl, plus: the issuer is a server
 * key, the type is `authorization_request`, and it names the user and the server.
 *
 * @throws {CalloutKeyError} naming what is wrong with the request.
 */
export function decodeAuthorizationRequest(jwt: string): ClaimsData<AuthorizationRequest> {
  const parts = jwt.trim().split(".");
  if (parts.length !== 3) {
    throw new CalloutKeyError(`not a JWT (${parts.length} parts instead of 3)`);
  }
  const [head, body, sig] = parts as [string, string, string];
  const header = parseJsonPart(base64UrlDecode(head));
  if (!header || (header.typ !== "JWT" && header.typ !== "jwt")) {
    throw new CalloutKeyError("not a NATS JWT (bad header)");
  }
  if (header.alg !== "ed25519-nkey") {
    throw new CalloutKeyError(`not a NATS v2 JWT (alg ${JSON.stringify(header.alg)})`);
  }
  const claims = parseJsonPart(base64UrlDecode(body));
  if (!claims) throw new CalloutKeyError("the JWT's claims are not a JSON object");
  const iss = typeof claims.iss === "string" ? claims.iss : "";
  const issuerKey = serverKey(iss);
  if (!issuerKey) {
    throw new CalloutKeyError(`the issuer ${JSON.stringify(iss)} is not a server nkey`);
  }
  const signature = base64UrlDecode(sig);
  const signed = new TextEncoder().encode(`${head}.${body}`);
  if (
    !signature || signature.length !== 64 ||
    !ed25519Verify(null, signed, issuerKey, signature)
  ) {
    throw new CalloutKeyError("the signature does not verify");
  }
  const nats = claims.nats;
  if (typeof nats !== "object" || nats === null) {
    throw new CalloutKeyError("the JWT has no nats claims");
  }
  const request = nats as Record<string, unknown>;
  if (request.type !== "authorization_request") {
    throw new CalloutKeyError(`unexpected JWT type ${JSON.stringify(request.type)}`);
  }
  const server = request.server_id as Record<string, unknown> | undefined;
  if (
    typeof request.user_nkey !== "string" ||
    !rawPublicKey(request.user_nkey, Prefix.user) ||
    typeof server?.id !== "string" || !serverKey(server.id) ||
    typeof request.connect_opts !== "object" || request.connect_opts === null
  ) {
    throw new CalloutKeyError(
      "the request lacks the user nkey, the server id or the connect options",
    );
  }
  return claims as unknown as ClaimsData<AuthorizationRequest>;
}

const JWT_HEADER = Buffer.from(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }))
  .toString("base64url");

/**
 * Signs NATS v2 claims as `@nats-io/jwt`'s `encode()` does (`iss`, `iat`, `nats.version` 2
 * and a `jti` hashing the claims) but synchronously: the library hashes with WebCrypto's
 * async digest, which cost the callout more than both Ed25519 signatures of an answer.
 */
function encodeNatsJwt(
  claims: Record<string, unknown> & { nats: Record<string, unknown> },
  issuer: KeyPair,
  nowMs: number,
): string {
  const body = {
    ...claims,
    nats: { ...claims.nats, version: 2 },
    iss: issuer.getPublicKey(),
    iat: Math.floor(nowMs / 1000),
  };
  const jti = createHash("sha512").update(JSON.stringify(body)).digest("base64");
  const signed = `${JWT_HEADER}.${
    Buffer.from(JSON.stringify({ ...body, jti })).toString("base64url")
  }`;
  const signature = issuer.sign(new TextEncoder().encode(signed));
  return `${signed}.${Buffer.from(signature).toString("base64url")}`;
}

/** What a user JWT says: who, in which account, until when, and the `nats` user claims. */
export interface UserJwtClaims {
  name: string;
  /** The user's public nkey (`U...`), from the authorization request. */
  userKey: string;
  /** The account the user is placed into. */
  account: string;
  /** Epoch ms, a whole second. */
  expiresAt: number;
  nats: Partial<User>;
}

/**
 * The user JWT `issuer` signs (as `@nats-io/jwt`'s `encodeUser`, with unlimited `data`,
 * `payload` and `subs` where `nats` sets none).
 */
export function encodeUserJwt(user: UserJwtClaims, issuer: KeyPair, nowMs: number): string {
  return encodeNatsJwt(
    {
      exp: user.expiresAt / 1000,
      aud: user.account,
      name: user.name,
      sub: user.userKey,
      nats: { data: -1, payload: -1, subs: -1, ...user.nats, type: "user" },
    },
    issuer,
    nowMs,
  );
}

/**
 * The authorization response JWT for the user `userKey` on the server `serverId`: the user
 * JWT, or the error the client is told (as `@nats-io/jwt`'s `encodeAuthorizationResponse`).
 */
export function encodeAuthorizationResponseJwt(
  userKey: string,
  serverId: string,
  answer: { jwt: string } | { error: string },
  issuer: KeyPair,
  nowMs: number,
): string {
  return encodeNatsJwt(
    {
      aud: serverId,
      sub: userKey,
      nats: { ...answer, type: "authorization_response" },
    },
    issuer,
    nowMs,
  );
}
