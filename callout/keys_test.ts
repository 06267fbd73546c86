import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createAccount, createCurve, createServer, createUser, fromPublic } from "@nats-io/nkeys";
import {
  type AuthorizationRequest,
  decode,
  encodeAuthorizationResponse,
  encodeGeneric,
  encodeUser,
  type User,
} from "@nats-io/jwt";
import {
  AccountSigningKey,
  CalloutKeyError,
  curveKeyFromSeed,
  decodeAuthorizationRequest,
  encodeAuthorizationResponseJwt,
  encodeUserJwt,
  generateSeeds,
  publicKeyOfSeed,
} from "./keys.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);

Deno.test("AccountSigningKey signs exactly like nkeys, and JWTs it issues decode", async () => {
  const nkey = createAccount();
  const key = AccountSigningKey.fromSeed(text(nkey.getSeed()));
  assert.equal(key.getPublicKey(), nkey.getPublicKey());
  assert.deepStrictEqual(key.getPrivateKey(), nkey.getPrivateKey());
  const data = new TextEncoder().encode("hello");
  const sig = key.sign(data);
  assert.deepStrictEqual(sig, nkey.sign(data));
  assert.ok(key.verify(data, sig));
  assert.ok(fromPublic(nkey.getPublicKey()).verify(data, sig));

  const user = createUser().getPublicKey();
  const jwt = await encodeUser("dev-a", user, key, { pub: { allow: ["a"] } }, { aud: "FLEET" });
  const claims = decode<User>(jwt); // verifies the signature with tweetnacl
  assert.equal(claims.iss, nkey.getPublicKey());
  assert.equal(claims.aud, "FLEET");
  assert.equal(claims.sub, user);
  assert.deepStrictEqual(claims.nats.pub, { allow: ["a"] });
  const response = await encodeAuthorizationResponse(
    user,
    createServer().getPublicKey(),
    key,
    { jwt },
    {},
  );
  assert.equal(decode(response).iss, nkey.getPublicKey());
});

Deno.test("encodeUserJwt() and encodeAuthorizationResponseJwt() write what @nats-io/jwt writes, synchronously", async () => {
  const key = AccountSigningKey.fromSeed(text(createAccount().getSeed()));
  const user = createUser().getPublicKey();
  const server = createServer().getPublicKey();
  const nats: Partial<User> = { pub: { allow: ["a.>"] }, sub: { allow: ["b"] }, subs: 10 };
  const now = Date.UTC(2026, 11, 6, 5, 0, 0, 700);
  const exp = Date.UTC(2026, 11, 6, 5, 10);
  const ours = encodeUserJwt(
    { name: "dev-a", userKey: user, account: "FLEET", expiresAt: exp, nats },
    key,
    now,
  );
  const theirs = await encodeUser("dev-a", user, key, nats, { aud: "FLEET", exp: exp / 1000 });
  const sameBut = (a: string, b: string) => {
    // decode() verifies the signature against iss; jti and iat differ by design.
    const { jti, iat, ...mine } = decode<Record<string, unknown>>(a);
    const { jti: _, iat: __, ...library } = decode<Record<string, unknown>>(b);
    assert.deepStrictEqual(mine, library);
    assert.equal(iat, Math.floor(now / 1000));
    const hashed = createHash("sha512").update(JSON.stringify({ ...mine, iat })).digest("base64");
    assert.equal(jti, hashed, "jti hashes the claims, as the library's does");
    assert.equal(a.split(".")[0], b.split(".")[0], "same header");
  };
  sameBut(ours, theirs);
  for (const answer of [{ jwt: ours }, { error: "authorization failed" }]) {
    sameBut(
      encodeAuthorizationResponseJwt(user, server, answer, key, now),
      await encodeAuthorizationResponse(user, server, key, answer, {}),
    );
  }
});

Deno.test("AccountSigningKey.fromSeed() rejects what is not an account seed", () => {
  const seeds = [
    "",
    "nonsense",
    text(createUser().getSeed()),
    text(createCurve().getSeed()),
    createAccount().getPublicKey(),
    // One character of the key changed (not the last: its low bits are padding): the
    // checksum catches it.
    flip(text(createAccount().getSeed()), 20),
  ];
  for (const seed of seeds) {
    assert.throws(() => AccountSigningKey.fromSeed(seed), CalloutKeyError, seed);
  }
  const key = AccountSigningKey.fromSeed(`  ${text(createAccount().getSeed())}\n`);
  key.clear();
  assert.throws(() => key.sign(new Uint8Array(1)), CalloutKeyError);
});

Deno.test("curveKeyFromSeed() loads an xkey that seals and opens with nkeys' curve keys", () => {
  const server = createCurve();
  const seed = text(createCurve().getSeed());
  const xkey = curveKeyFromSeed(`${seed}\n`);
  assert.equal(publicKeyOfSeed(seed), xkey.getPublicKey());
  const sealed = server.seal(new TextEncoder().encode("hi"), xkey.getPublicKey());
  const opened = xkey.open(sealed, server.getPublicKey());
  assert.equal(opened && text(opened), "hi");
  assert.throws(() => curveKeyFromSeed(text(createAccount().getSeed())), CalloutKeyError);
});

Deno.test("generateSeeds() writes an account seed and a curve seed", () => {
  const { issuerSeed, xkeySeed } = generateSeeds();
  assert.match(issuerSeed, /^SA[A-Z2-7]{56}$/);
  assert.match(xkeySeed, /^SX[A-Z2-7]{56}$/);
  assert.match(publicKeyOfSeed(issuerSeed), /^A[A-Z2-7]{55}$/);
  assert.match(publicKeyOfSeed(xkeySeed), /^X[A-Z2-7]{55}$/);
});

async function request(
  server = createServer(),
  nats: Record<string, unknown> = {},
): Promise<string> {
  const user = createUser().getPublicKey();
  return await encodeGeneric("request", server, "authorization_request", {
    server_id: { id: server.getPublicKey(), name: "s", host: "127.0.0.1" },
    user_nkey: user,
    client_info: { host: "127.0.0.1" },
    connect_opts: { auth_token: "tok", protocol: 1 },
    ...nats,
  }, { aud: "nats-authorization-request" });
}

Deno.test("decodeAuthorizationRequest() decodes what the server signs, like decode()", async () => {
  const jwt = await request();
  const claims = decodeAuthorizationRequest(jwt);
  assert.deepStrictEqual(claims, decode<AuthorizationRequest>(jwt));
  assert.equal(claims.nats.connect_opts?.auth_token, "tok");
});

Deno.test("decodeAuthorizationRequest() verifies the requests of more servers than it keeps keys of", async () => {
  const servers = Array.from({ length: 20 }, () => createServer());
  for (const round of [1, 2]) {
    for (const server of servers) {
      const claims = decodeAuthorizationRequest(await request(server));
      assert.equal(claims.iss, server.getPublicKey(), `round ${round}`);
    }
  }
});

Deno.test("decodeAuthorizationRequest() rejects tampered and malformed requests", async () => {
  const jwt = await request();
  const [h, b, s] = jwt.split(".") as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(
    atob(
      b.replace(/-/g, "+").replace(/_/g, "/"),
    ),
    (c) => c.charCodeAt(0),
  )));
  claims.nats.connect_opts.auth_token = "other";
  const forged = btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  const cases: [string, RegExp][] = [
    [`${h}.${forged}.${s}`, /signature does not verify/],
    ["a.b", /not a JWT/],
    [`${h}.${b}.${s.slice(0, -4)}`, /signature/],
    [
      await encodeGeneric("r", createServer(), "user", {}, {}),
      /unexpected JWT type "user"/,
    ],
    [
      await encodeGeneric("r", createAccount(), "authorization_request", {}, {}),
      /not a server nkey/,
    ],
    [await request(undefined, { user_nkey: "nope" }), /lacks the user nkey/],
  ];
  // Its server's key is known now: a forged request naming it must still fail.
  assert.ok(decodeAuthorizationRequest(jwt));
  for (const [input, message] of cases) {
    assert.throws(() => decodeAuthorizationRequest(input), (err: unknown) => {
      assert.ok(err instanceof CalloutKeyError, String(err));
      assert.match(err.message, message);
      return true;
    });
  }
  assert.ok(decodeAuthorizationRequest(jwt));
});
