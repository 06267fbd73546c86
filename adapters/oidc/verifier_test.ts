import assert from "node:assert/strict";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { silentLogger } from "../logger.ts";
import { rejection } from "../../testing/oidc.ts";
import { eventually } from "../../testing/eventually.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import {
  startTestProvider,
  type TestProvider,
  ZITADEL_ROLES_CLAIM,
} from "../../testing/oidc_provider.ts";
import { nonLoopbackAddress } from "../../testing/tls.ts";
import { PROJECT, signInWithDeviceFlow, startProjectProvider } from "../../testing/oidc.ts";
import {
  createTokenVerifier,
  issuerProblem,
  RejectionCodes,
  TokenRejectedError,
  type TokenVerifierOptions,
} from "./verifier.ts";

function verifierFor(idp: TestProvider, options: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({
    issuer: idp.issuer,
    audience: idp.audience,
    logger: silentLogger,
    fetchTimeoutMs: 2_000,
    ...options,
  });
}

Deno.test("createTokenVerifier() accepts tokens from both grants and returns their claims", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "pi-lab-1", roles: ["device"] });
  const verifier = verifierFor(idp);
  for (const grant of ["jwt-bearer", "client-credentials"] as const) {
    const token = await idp.mintToken(device, { grant });
    const verified = await verifier.verify(token);
    assert.equal(verified.claims.fleet_device_id, "pi-lab-1", grant);
    assert.deepEqual(
      verified.claims[ZITADEL_ROLES_CLAIM],
      { device: { "fleet-org": "fleet.localhost" } },
      grant,
    );
    assert.equal(verified.expiresAt, (decodeJwt(token).exp ?? 0) * 1000, grant);
  }
  assert.deepEqual(verifier.keyIds, [idp.signingKid]);
});

Deno.test("createTokenVerifier() rejects an expired token and says when it expired", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const verifier = verifierFor(idp, { clockToleranceSeconds: 0, clock });
  const token = await idp.mintToken(device);
  await verifier.verify(token);
  const exp = (decodeJwt(token).exp ?? 0) * 1000;
  await clock.advance(exp - clock.now() - 1_000);
  await verifier.verify(token);
  await clock.advance(1_000);
  const err = await rejection(verifier.verify(token), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.expired);
  assert.match(err.reason, new RegExp(`^expired at ${new Date(exp).toISOString()} \\(now `));
  assert.ok(!err.message.includes(token), "the token must not be in the message");
});

Deno.test("createTokenVerifier() keeps a verified token until it expires, and no more than its bound", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const verifier = verifierFor(idp, { clock, verifiedTokenCacheSize: 2 });
  const [a, b, c] = [
    await idp.mintToken(device),
    await idp.mintToken(device),
    await idp.mintToken(device),
  ];
  const first = await verifier.verify(a!);
  assert.equal(await verifier.verify(a!), first, "verified again from memory");
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.claims), "shared, so frozen");
  await verifier.verify(b!);
  await verifier.verify(a!); // a is now used more recently than b
  const third = await verifier.verify(c!); // over the bound: b goes
  assert.equal(await verifier.verify(a!), first);
  assert.equal(await verifier.verify(c!), third);
  const second = await verifier.verify(b!); // checked again; a, least recently used, goes
  assert.equal(await verifier.verify(b!), second);
  assert.equal(await verifier.verify(c!), third);
  assert.notEqual(await verifier.verify(a!), first, "a went to make room for b");
  // Kept or not, a token past its exp (and the leeway) is refused.
  await clock.advance(first.expiresAt - clock.now() + 6_000);
  const err = await rejection(verifier.verify(a!), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.expired);
});

Deno.test("createTokenVerifier() forgets the tokens it kept when the provider's keys change", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const verifier = verifierFor(idp, { maxKeyAgeMs: 60_000, clock });
  const token = await idp.mintToken(device);
  const first = await verifier.verify(token);
  const newKid = await idp.rotateSigningKey();
  await clock.advance(60_000);
  assert.equal(await verifier.verify(token), first, "kept while the refetch goes on");
  await eventually("the rotated key fetched", () => verifier.keyIds.includes(newKid), 5_000);
  const again = await verifier.verify(token);
  assert.notEqual(again, first, "checked again with the new key set");
  assert.deepEqual(again.claims, first.claims);
});

Deno.test("createTokenVerifier() tolerates a little clock skew on exp", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const token = await idp.mintToken(device);
  const exp = (decodeJwt(token).exp ?? 0) * 1000;
  const at = (ms: number) => new FakeClock(ms);
  await verifierFor(idp, { clockToleranceSeconds: 5, clock: at(exp + 3_000) }).verify(token);
  const err = await rejection(
    verifierFor(idp, { clockToleranceSeconds: 5, clock: at(exp + 6_000) }).verify(token),
    TokenRejectedError,
  );
  assert.equal(err.code, RejectionCodes.expired);
});

Deno.test("createTokenVerifier() rejects a token for another audience", async () => {
  await using idp = await startTestProvider({ audience: "nats://other-fleet" });
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const verifier = verifierFor(idp, { audience: "nats://fleet" });
  const err = await rejection(verifier.verify(await idp.mintToken(device)), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.audience);
  assert.equal(
    err.reason,
    `audience "nats://other-fleet" does not include the configured "nats://fleet"`,
  );
});

Deno.test("createTokenVerifier() rejects a token of a foreign issuer without fetching keys", async () => {
  await using idp = await startTestProvider();
  await using foreign = await startTestProvider();
  const verifier = verifierFor(idp, { minRefetchIntervalMs: 0 });
  await verifier.refreshKeys();
  await idp.stop(); // a refetch would now fail with "provider unreachable"
  const impostor = await foreign.addMachineUser({ id: "dev1", roles: ["device"] });
  const err = await rejection(
    verifier.verify(await foreign.mintToken(impostor)),
    TokenRejectedError,
  );
  assert.equal(err.code, RejectionCodes.issuer);
  assert.equal(err.reason, `issuer "${foreign.issuer}" is not the configured "${idp.issuer}"`);
});

Deno.test("createTokenVerifier() refetches the JWKS for an unknown kid after a key rotation", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const verifier = verifierFor(idp, { minRefetchIntervalMs: 0 });
  await verifier.verify(await idp.mintToken(device));
  const oldKid = idp.signingKid;
  const newKid = await idp.rotateSigningKey();
  const token = await idp.mintToken(device);
  assert.equal(decodeProtectedHeader(token).kid, newKid);
  await verifier.verify(token);
  assert.deepEqual(verifier.keyIds, [newKid, oldKid]);
});

Deno.test("createTokenVerifier() refetches for unknown kids at most once per interval", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const verifier = verifierFor(idp, { minRefetchIntervalMs: 10_000, clock });
  await verifier.verify(await idp.mintToken(device));
  await idp.rotateSigningKey();
  const token = await idp.mintToken(device);
  const err = await rejection(verifier.verify(token), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.unknownKey);
  assert.match(
    err.reason,
    /^unknown signing key kid=\S+ \(JWKS refreshed 0 s ago; next refetch allowed in 10 s\)$/,
  );
  await clock.advance(9_999);
  const again = await rejection(verifier.verify(token), TokenRejectedError);
  assert.match(again.reason, /next refetch allowed in 1 s\)$/);
  await clock.advance(1);
  await verifier.verify(token);
});

Deno.test("createTokenVerifier() refetches the keys in the background once they are maxKeyAgeMs old", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const verifier = verifierFor(idp, { maxKeyAgeMs: 60_000, clock });
  const token = await idp.mintToken(device);
  await verifier.verify(token);
  const oldKid = idp.signingKid;
  const newKid = await idp.rotateSigningKey();
  await clock.advance(60_000);
  // A token it can verify from the kept keys: the refetch goes on in the background.
  await verifier.verify(token);
  await eventually("the rotated key fetched", () => verifier.keyIds.includes(newKid), 5_000);
  assert.deepEqual(verifier.keyIds, [newKid, oldKid]);
});

Deno.test("createTokenVerifier() keeps verifying from cached keys while the provider is down", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const verifier = verifierFor(idp, { minRefetchIntervalMs: 0, fetchTimeoutMs: 1_000 });
  const token = await idp.mintToken(device);
  await verifier.verify(token);
  const rotatedKid = await idp.rotateSigningKey();
  const unknownKidToken = await idp.mintToken(device);
  await idp.stop();

  const verified = await verifier.verify(token);
  assert.equal(verified.claims.sub, "dev1");

  const err = await rejection(verifier.verify(unknownKidToken), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.providerUnreachable);
  assert.match(
    err.reason,
    new RegExp(
      `^provider unreachable and no cached key kid=${rotatedKid} \\(1 other keys cached\\): ` +
        `cannot reach ${idp.jwksUri.replaceAll(".", "\\.")}`,
    ),
  );

  await idp.start();
  await verifier.verify(unknownKidToken);
});

Deno.test("createTokenVerifier() says the provider is unreachable when it never had keys", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const token = await idp.mintToken(device);
  await idp.stop();
  const err = await rejection(verifierFor(idp).verify(token), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.providerUnreachable);
  assert.match(err.reason, /^provider unreachable and no cached key \(kid=\S+\): cannot reach /);
});

Deno.test("createTokenVerifier() rejects a forged signature, a disallowed algorithm and garbage", async () => {
  await using idp = await startTestProvider();
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const verifier = verifierFor(idp);
  const token = await idp.mintToken(device);
  const claims = decodeJwt(token);
  const kid = decodeProtectedHeader(token).kid ?? "";

  const { privateKey } = await generateKeyPair("ES256");
  const forged = await new SignJWT({ ...claims, roles: ["admin"] })
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
    .sign(privateKey);
  const forgedErr = await rejection(verifier.verify(forged), TokenRejectedError);
  assert.equal(forgedErr.code, RejectionCodes.signature);
  assert.equal(forgedErr.reason, `signature does not verify with the issuer's key kid=${kid}`);

  const hmac = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", kid })
    .sign(new TextEncoder().encode("a shared secret of thirty-two bytes!"));
  const algErr = await rejection(verifier.verify(hmac), TokenRejectedError);
  assert.equal(algErr.code, RejectionCodes.algorithm);
  assert.match(algErr.reason, /^algorithm "HS256" is not allowed/);

  const garbageErr = await rejection(verifier.verify("not-a-token"), TokenRejectedError);
  assert.equal(garbageErr.code, RejectionCodes.malformed);
});

Deno.test("createTokenVerifier() rejects a token that is not valid yet", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({
    id: "dev1",
    roles: ["device"],
    extraClaims: { nbf: Math.floor(Date.now() / 1000) + 3600 },
  });
  const err = await rejection(
    verifierFor(idp).verify(await idp.mintToken(user)),
    TokenRejectedError,
  );
  assert.equal(err.code, RejectionCodes.notYetValid);
  assert.match(err.reason, /^not valid before \d{4}-\d\d-\d\dT\S+ \(now \S+\)$/);
});

Deno.test("createTokenVerifier() refuses an ID token, and a typ JWT token unless its client is listed", async () => {
  await using idp = await startProjectProvider("JWT");
  const login = await signInWithDeviceFlow(idp, "alice");
  assert.equal(decodeProtectedHeader(login.accessToken).typ, "JWT");
  assert.ok(login.idToken !== undefined);
  assert.deepEqual(decodeJwt(login.idToken).roles, ["admin"], "the ID token carries roles");

  const strict = verifierFor(idp);
  for (const token of [login.accessToken, login.idToken]) {
    const err = await rejection(strict.verify(token), TokenRejectedError);
    assert.equal(err.code, RejectionCodes.notAccessToken);
    assert.match(
      err.reason,
      /not an access token: its header has (no typ|typ "JWT"), not "at\+jwt"/,
    );
    assert.match(err.reason, /access_token_clients/);
  }
  const listed = verifierFor(idp, { accessTokenClients: [PROJECT] });
  assert.equal((await listed.verify(login.accessToken)).claims.sub, "alice");
  const err = await rejection(listed.verify(login.idToken), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.notAccessToken);
  assert.match(err.reason, /names no client \(client_id or azp\)/);
});

Deno.test("createTokenVerifier() refuses every token of an http issuer that is not loopback", async () => {
  await using idp = await startTestProvider({ host: nonLoopbackAddress() });
  const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const token = await idp.mintToken(device);
  const err = await rejection(verifierFor(idp).verify(token), TokenRejectedError);
  assert.equal(err.code, RejectionCodes.issuer);
  assert.match(err.reason, /the issuer "http:\/\/[\d.]+:\d+" is not https: its signing keys/);
  assert.equal(issuerProblem("https://id.example.com"), undefined);
  assert.equal(issuerProblem("http://localhost:8080"), undefined);
});
