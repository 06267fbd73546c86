import assert from "node:assert/strict";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";
import { silentLogger } from "../adapters/logger.ts";
import { startTestProvider, ZITADEL_ROLES_CLAIM } from "./oidc_provider.ts";
import { createTokenSource, TokenMintError } from "../adapters/oidc/token_source.ts";
import { zitadelScope } from "../core/zitadel.ts";
import { rejection } from "./oidc.ts";
import { tempDir } from "./temp_dir.ts";
import { makeTestCertificates } from "./tls.ts";

async function getJson(url: string): Promise<Record<string, unknown>> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  return await response.json() as Record<string, unknown>;
}

async function jwks(url: string): Promise<JWK[]> {
  return (await getJson(url)).keys as JWK[];
}

Deno.test("startTestProvider() serves discovery and a JWKS of public keys", async () => {
  await using idp = await startTestProvider();
  assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  const discovery = await getJson(idp.discoveryUrl);
  assert.equal(discovery.issuer, idp.issuer);
  assert.equal(discovery.jwks_uri, idp.jwksUri);
  assert.equal(discovery.token_endpoint, idp.tokenEndpoint);
  assert.ok((discovery.grant_types_supported as string[]).includes("client_credentials"));
  assert.ok(
    (discovery.grant_types_supported as string[]).includes(
      "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ),
  );
  const keys = await jwks(idp.jwksUri);
  assert.deepEqual(keys.map((k) => k.kid), [idp.signingKid]);
  assert.equal(keys[0]?.d, undefined, "the JWKS must not publish private parts");
});

Deno.test("startTestProvider() with tls serves https: an issuer a verifier beyond loopback accepts", async () => {
  await using dir = await tempDir("fleet-idp-tls-");
  const certs = await makeTestCertificates(dir.path, "idp", ["IP:127.0.0.1"]);
  await using idp = await startTestProvider({
    tls: { certFile: certs.certFile, keyFile: certs.keyFile },
  });
  assert.match(idp.issuer, /^https:\/\/127\.0\.0\.1:\d+$/);
  using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.caFile)] });
  const response = await fetch(idp.discoveryUrl, { client });
  const discovery = await response.json() as Record<string, unknown>;
  assert.equal(discovery.issuer, idp.issuer);
  assert.equal(discovery.token_endpoint, idp.tokenEndpoint);
  await assert.rejects(fetch(idp.discoveryUrl), TypeError, "not trusted without its CA");
});

Deno.test("startTestProvider() issues JWT access tokens with device id and both roles claims", async () => {
  await using idp = await startTestProvider({ orgId: "42", orgDomain: "fleet.example" });
  const device = await idp.addMachineUser({
    id: "pi-lab-1",
    roles: ["device"],
    extraClaims: { site: "lab" },
  });
  const keySet = createLocalJWKSet({ keys: await jwks(idp.jwksUri) });
  for (const grant of ["jwt-bearer", "client-credentials"] as const) {
    const token = await idp.mintToken(device, { grant });
    assert.equal(decodeProtectedHeader(token).typ, "at+jwt");
    const { payload } = await jwtVerify(token, keySet, {
      issuer: idp.issuer,
      audience: "nats://fleet",
    });
    assert.equal(payload.sub, "pi-lab-1", grant);
    assert.equal(payload.client_id, "pi-lab-1", grant);
    assert.equal(payload.fleet_device_id, "pi-lab-1", grant);
    assert.deepEqual(payload[ZITADEL_ROLES_CLAIM], { device: { "42": "fleet.example" } }, grant);
    assert.deepEqual(payload.roles, ["device"], grant);
    assert.equal(payload.site, "lab", grant);
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600, grant);
  }
});

Deno.test("startTestProvider() as Zitadel: roles and the project audience only when asked for", async () => {
  await using idp = await startTestProvider({
    zitadelProjectId: "302118472931950612",
    orgId: "42",
    orgDomain: "fleet.example",
  });
  const device = await idp.addMachineUser({ id: "pi-lab-1", roles: ["device"] });
  const keySet = createLocalJWKSet({ keys: await jwks(idp.jwksUri) });
  for (const grant of ["jwt-bearer", "client-credentials"] as const) {
    const bare = decodeJwt(await idp.mintToken(device, { grant }));
    assert.equal(bare[ZITADEL_ROLES_CLAIM], undefined, grant);
    assert.equal(bare.roles, undefined, grant);
    assert.deepEqual(bare.aud, ["pi-lab-1"], grant);

    const token = await idp.mintToken(device, { grant, scope: zitadelScope("302118472931950612") });
    const { payload } = await jwtVerify(token, keySet, {
      issuer: idp.issuer,
      audience: "302118472931950612",
    });
    const roles = { device: { "42": "fleet.example" } };
    assert.deepEqual(payload[ZITADEL_ROLES_CLAIM], roles, grant);
    assert.deepEqual(payload["urn:zitadel:iam:org:project:302118472931950612:roles"], roles, grant);
    assert.equal(payload.roles, undefined, grant);
  }
});

Deno.test("startTestProvider() can put the device id in sub and grant scopes", async () => {
  await using idp = await startTestProvider({
    deviceIdClaim: "sub",
    scopes: ["fleet", "openid"],
    accessTokenTtlSeconds: 30,
  });
  const user = await idp.addMachineUser({
    id: "machine-7",
    deviceId: "pi-shop-1",
    roles: ["device", "viewer"],
    keyAlgorithm: "RS256",
  });
  assert.equal(user.privateKeyJwk.kty, "RSA");
  const claims = decodeJwt(await idp.mintToken(user, { scope: "fleet" }));
  assert.equal(claims.sub, "pi-shop-1");
  assert.equal(claims.client_id, "machine-7");
  assert.equal(claims.scope, "fleet");
  assert.deepEqual(claims.roles, ["device", "viewer"]);
  assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 30);
});

Deno.test("startTestProvider() refuses an assertion signed with another key", async () => {
  await using idp = await startTestProvider();
  const real = await idp.addMachineUser({ id: "dev-a", roles: ["device"] });
  const other = await idp.addMachineUser({ id: "dev-b", roles: ["device"] });
  for (const grant of ["jwt-bearer", "client-credentials"] as const) {
    const source = createTokenSource({
      issuer: idp.issuer,
      clientId: real.clientId,
      privateKeyJwk: other.privateKeyJwk,
      grant,
      audience: idp.audience,
      logger: silentLogger,
    });
    const err = await rejection(source.token(), TokenMintError);
    assert.equal(err.error, "invalid_client", grant);
    assert.equal(err.status, 401, grant);
    assert.match(err.message, /client "dev-a" from http:\/\/127\.0\.0\.1:\d+: invalid_client/);
  }
});

Deno.test("startTestProvider() refuses an unknown resource and drops an unknown scope", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  for (const grant of ["jwt-bearer", "client-credentials"] as const) {
    const base = {
      issuer: idp.issuer,
      clientId: user.clientId,
      privateKeyJwk: user.privateKeyJwk,
      grant,
      logger: silentLogger,
    };
    const wrongResource = createTokenSource({ ...base, audience: "nats://elsewhere" });
    assert.equal((await rejection(wrongResource.token(), TokenMintError)).error, "invalid_target");
    const unknownScope = createTokenSource({ ...base, scope: "admin fleet" });
    assert.equal(decodeJwt(await unknownScope.token()).scope, "fleet", grant);
  }
});

Deno.test("TestProvider.stop() and start() go down and come back on the same port", async () => {
  await using idp = await startTestProvider();
  const issuer = idp.issuer;
  await idp.stop();
  assert.equal(idp.running, false);
  await assert.rejects(fetch(idp.jwksUri));
  await idp.start();
  assert.equal(idp.issuer, issuer);
  assert.equal((await jwks(idp.jwksUri)).length, 1);
});

Deno.test("TestProvider.rotateSigningKey() signs with a new kid and keeps the old one published", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const oldKid = idp.signingKid;
  const oldToken = await idp.mintToken(user);
  const newKid = await idp.rotateSigningKey();
  assert.notEqual(newKid, oldKid);
  const newToken = await idp.mintToken(user);
  assert.equal(decodeProtectedHeader(newToken).kid, newKid);
  const keys = await jwks(idp.jwksUri);
  assert.deepEqual(keys.map((k) => k.kid), [newKid, oldKid]);
  const keySet = createLocalJWKSet({ keys });
  for (const token of [oldToken, newToken]) {
    await jwtVerify(token, keySet, { issuer: idp.issuer, audience: idp.audience });
  }
});

Deno.test("startTestProvider() takes Zitadel's bare JWT-bearer request and refuses a replay", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: user.privateKeyJwk.kid ?? "" })
    .setIssuer("dev1")
    .setSubject("dev1")
    .setAudience(idp.issuer)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .setJti(crypto.randomUUID())
    .sign(await importJWK(user.privateKeyJwk, "ES256"));
  const request = () =>
    fetch(idp.tokenEndpoint, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion,
        scope: "fleet",
      }),
    });
  const first = await request();
  const body = await first.json() as Record<string, unknown>;
  assert.equal(first.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 600);
  assert.equal(body.scope, "fleet");
  assert.equal(decodeJwt(String(body.access_token)).fleet_device_id, "dev1");
  const replay = await request();
  const refusal = await replay.json() as Record<string, unknown>;
  assert.equal(replay.status, 401);
  assert.equal(refusal.error, "invalid_client");
});
