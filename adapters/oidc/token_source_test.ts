import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { decodeJwt, type JWK } from "jose";
import { createLogger, silentLogger } from "../logger.ts";
import { createZitadelIdentityProvider, createZitadelManagement } from "../zitadel/mod.ts";
import { rejection } from "../../testing/oidc.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../../testing/oidc_provider.ts";
import {
  createTokenSource,
  loadPrivateKey,
  PrivateKeyError,
  type TokenGrant,
  TokenMintError,
  type TokenSourceOptions,
} from "./token_source.ts";
import { createTokenVerifier } from "./verifier.ts";

function sourceFor(
  idp: TestProvider,
  user: MachineUser,
  options: Partial<TokenSourceOptions> = {},
) {
  return createTokenSource({
    issuer: idp.issuer,
    clientId: user.clientId,
    privateKeyJwk: user.privateKeyJwk,
    grant: "jwt-bearer",
    audience: idp.audience,
    logger: silentLogger,
    ...options,
  });
}

Deno.test("createTokenSource() mints with both grants tokens the verifier accepts", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "pi-lab-1", roles: ["device"] });
  const verifier = createTokenVerifier({
    issuer: idp.issuer,
    audience: idp.audience,
    logger: silentLogger,
  });
  for (const grant of ["jwt-bearer", "client-credentials"] satisfies TokenGrant[]) {
    const source = sourceFor(idp, user, { grant });
    assert.equal(source.current(), undefined);
    assert.equal(source.expiresAt, undefined);
    const token = await source.token();
    assert.equal(source.current(), token);
    const { claims, expiresAt } = await verifier.verify(token);
    assert.equal(claims.sub, "pi-lab-1");
    // By the local clock (mint time + expires_in); the claim has whole seconds.
    assert.ok(Math.abs((source.expiresAt ?? 0) - expiresAt) < 1_500);
    assert.equal(source.refreshAt, (source.expiresAt ?? 0) - 60_000);
  }
});

Deno.test("createTokenSource() asks Zitadel for the project's roles and the project as audience", async () => {
  await using idp = await startTestProvider({ zitadelProjectId: "302118472931950612" });
  const user = await idp.addMachineUser({ id: "pi-lab-1", roles: ["device"] });
  const verifier = createTokenVerifier({
    issuer: idp.issuer,
    audience: "302118472931950612",
    logger: silentLogger,
  });
  for (const grant of ["jwt-bearer", "client-credentials"] satisfies TokenGrant[]) {
    const token = await createTokenSource({
      issuer: idp.issuer,
      clientId: user.clientId,
      privateKeyJwk: user.privateKeyJwk,
      grant,
      zitadelProjectId: "302118472931950612",
      logger: silentLogger,
    }).token();
    const { claims } = await verifier.verify(token);
    assert.deepEqual(
      Object.keys(claims["urn:zitadel:iam:org:project:roles"] as object),
      ["device"],
      grant,
    );
  }
});

Deno.test("createTokenSource() reuses the cached token and re-mints near expiry", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 3 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  // Starts at the real time: the provider checks the assertions' iat and exp by its own clock.
  const clock = new FakeClock(Date.now());
  // refreshBeforeSeconds (60) exceeds the lifetime: the margin is capped at half of it.
  const source = sourceFor(idp, user, { clock });
  const mintedAt = clock.now();
  const first = await source.token();
  const expiresAt = source.expiresAt ?? 0;
  const refreshAt = source.refreshAt ?? 0;
  assert.equal(expiresAt, mintedAt + 3_000, "mint time + expires_in, by the source's clock");
  assert.equal(refreshAt, expiresAt - 1_500, "margin capped at half the 3 s lifetime");

  await clock.advance(refreshAt - clock.now() - 1);
  assert.equal(await source.token(), first, "a fresh token is reused");
  await clock.advance(1);
  const second = await source.token();
  assert.notEqual(second, first, "re-minted within the refresh margin");
  assert.ok(clock.now() < expiresAt, "re-minted before the old token expired");
  assert.equal(source.expiresAt, clock.now() + 3_000);
});

Deno.test("TokenSource.refresh() mints now and shares one request between callers", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const source = sourceFor(idp, user);
  const first = await source.token();
  const calls = [source.refresh(), source.refresh(), source.refresh()];
  assert.equal(calls[1], calls[0], "one request in flight");
  assert.equal(calls[2], calls[0], "one request in flight");
  await Promise.all(calls);
  const second = source.current();
  assert.notEqual(second, first);
  assert.notEqual(decodeJwt(second ?? "").jti, decodeJwt(first).jti);
});

Deno.test("TokenSource.token() keeps an unexpired token while the provider is down", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const source = sourceFor(idp, user, { clock, fetchTimeoutMs: 1_000 });
  const token = await source.token();
  await idp.stop();
  await clock.advance((source.refreshAt ?? 0) - clock.now()); // due for renewal, not expired
  assert.equal(await source.token(), token);
  await clock.advance((source.expiresAt ?? 0) - clock.now());
  const err = await rejection(source.token(), TokenMintError);
  assert.match(
    err.message,
    /^Cannot get an access token for client "dev1" from http:\/\/127\.0\.0\.1:\d+: provider unreachable at /,
  );
  assert.equal(err.error, undefined);
});

Deno.test("createTokenSource() names the issuer and the provider's answer when refused", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const source = sourceFor(idp, { ...user, clientId: "nobody" });
  const err = await rejection(source.token(), TokenMintError);
  assert.equal(err.issuer, idp.issuer);
  assert.equal(err.clientId, "nobody");
  assert.equal(err.error, "invalid_client");
  assert.equal(err.status, 401);
  assert.match(
    err.message,
    new RegExp(
      `^Cannot get an access token for client "nobody" from ${idp.issuer}: invalid_client`,
    ),
  );
});

Deno.test("createTokenSource() says so when the issuer has no discovery document", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const source = sourceFor(idp, user, { issuer: `${idp.issuer}/wrong` });
  const err = await rejection(source.token(), TokenMintError);
  assert.match(err.message, /\/wrong\/\.well-known\/openid-configuration answered HTTP 404/);
});

Deno.test("loadPrivateKey() reads a Zitadel machine-key JSON with a PKCS#1 RSA key", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({
    id: "2845129",
    roles: ["device"],
    keyAlgorithm: "RS256",
  });
  const pem = createPrivateKey({ key: user.privateKeyJwk, format: "jwk" })
    .export({ type: "pkcs1", format: "pem" })
    .toString();
  assert.match(pem, /^-----BEGIN RSA PRIVATE KEY-----/);
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/machine-key.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        type: "serviceaccount",
        keyId: user.privateKeyJwk.kid,
        key: pem,
        userId: user.clientId,
      }),
    );
    const key = await loadPrivateKey(file);
    assert.equal(key.kid, user.privateKeyJwk.kid);
    assert.equal(key.clientId, "2845129");
    assert.equal(key.kty, "RSA");
    const token = await createTokenSource({
      issuer: idp.issuer,
      clientId: key.clientId ?? "",
      privateKeyJwk: key,
      grant: "jwt-bearer",
      audience: idp.audience,
      logger: silentLogger,
    }).token();
    assert.equal(decodeJwt(token).sub, "2845129");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPrivateKey() reads a JWK file, an inline JWK and an inline PKCS#8 PEM", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/key.jwk`;
    await Deno.writeTextFile(file, JSON.stringify(user.privateKeyJwk));
    assert.deepEqual(await loadPrivateKey(file), user.privateKeyJwk);
    assert.deepEqual(await loadPrivateKey(JSON.stringify(user.privateKeyJwk)), user.privateKeyJwk);

    const pkcs8 = createPrivateKey({ key: user.privateKeyJwk, format: "jwk" })
      .export({ type: "pkcs8", format: "pem" })
      .toString();
    const fromPem: JWK = await loadPrivateKey(pkcs8);
    assert.equal(fromPem.kid, user.privateKeyJwk.kid, "kid is the JWK thumbprint");
    const token = await sourceFor(idp, user, {
      privateKeyJwk: fromPem,
      grant: "client-credentials",
    })
      .token();
    assert.equal(decodeJwt(token).sub, "dev1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPrivateKey() names the file and the problem", async () => {
  const missing = await rejection(loadPrivateKey("/nonexistent/key.json"), PrivateKeyError);
  assert.match(missing.message, /^Cannot read the private key file "\/nonexistent\/key\.json": /);
  const publicOnly = await rejection(
    loadPrivateKey(JSON.stringify({ kty: "EC", crv: "P-256", x: "AA", y: "AA" })),
    PrivateKeyError,
  );
  assert.match(publicOnly.message, /the JWK is a public key/);
  const badPem = await rejection(
    loadPrivateKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
    PrivateKeyError,
  );
  assert.match(badPem.message, /^Cannot read the PEM key in the inline private key: /);
});

Deno.test("createTokenSource() signs with a key replaced in its key file from the next mint on, and warns before the key expires", async () => {
  const adminToken = "admin-token";
  await using idp = await startTestProvider({ managementToken: adminToken });
  const identity = createZitadelIdentityProvider({
    management: createZitadelManagement({ baseUrl: idp.issuer, token: adminToken }),
    projectId: "fleet",
    // Inside the warning period: the agent's log says so at each mint.
    keyExpiration: () => new Date(Date.now() + 10 * 24 * 3600 * 1000 + 60_000),
  });
  const first = (await identity.ensureDeviceIdentity("pi-lab-9")).keyFile!;
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/device-key.json`;
  await Deno.writeTextFile(keyFile, first);
  const lines: string[] = [];
  const key = await loadPrivateKey(keyFile);
  const source = createTokenSource({
    issuer: idp.issuer,
    clientId: key.clientId!,
    privateKeyJwk: key,
    keyFile,
    grant: "jwt-bearer",
    audience: idp.audience,
    logger: createLogger({ write: (line) => lines.push(line) }),
  });
  try {
    await source.refresh();
    assert.ok(
      lines.some((l) => /WARN.*The device key expires at \S+ \(in 10 days\); rotate it/.test(l)),
      lines.join("\n"),
    );
    // Rotated: the new key replaces the file, the old one is revoked at the provider.
    const second = await identity.addDeviceKey("pi-lab-9");
    await Deno.writeTextFile(`${keyFile}.new`, second.keyFile);
    await Deno.rename(`${keyFile}.new`, keyFile);
    assert.equal(await identity.removeDeviceKey("pi-lab-9", key.kid!), true);
    await source.refresh();
    assert.equal(decodeJwt(source.current()!).sub, "device-pi-lab-9");
    assert.ok(lines.some((l) => l.includes("Signing with the new key from the key file")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
