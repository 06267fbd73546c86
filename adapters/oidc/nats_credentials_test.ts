import assert from "node:assert/strict";
import type { Auth, TokenAuth } from "@nats-io/nats-core";
import { silentLogger } from "../logger.ts";
import { eventually } from "../../testing/nats.ts";
import { oidcCredentials } from "./nats_credentials.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../../testing/oidc_provider.ts";
import { createTokenSource, type TokenSource } from "./token_source.ts";

function sourceFor(idp: TestProvider, user: MachineUser, now?: () => number): TokenSource {
  return createTokenSource({
    issuer: idp.issuer,
    clientId: user.clientId,
    privateKeyJwk: user.privateKeyJwk,
    grant: "jwt-bearer",
    audience: idp.audience,
    logger: silentLogger,
    fetchTimeoutMs: 1_000,
    ...(now !== undefined ? { now } : {}),
  });
}

function tokenOf(auth: Auth): string {
  assert.ok(typeof auth === "object" && auth !== null && "auth_token" in auth, "a token auth");
  return (auth as TokenAuth).auth_token;
}

Deno.test("oidcCredentials() presents the current token and the inbox prefix", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "pi-lab-1", roles: ["device"] });
  const source = sourceFor(idp, user);
  const credentials = oidcCredentials(source, { inboxPrefix: "_INBOX_pi-lab-1" });
  try {
    assert.equal(credentials.kind, "oidc-token");
    assert.equal(
      credentials.describe(),
      `OIDC token for client "pi-lab-1" from ${idp.issuer}`,
    );
    const options = await credentials.connectionOptions();
    assert.equal(options.inboxPrefix, "_INBOX_pi-lab-1");
    assert.ok(options.authenticator !== undefined);
    const authenticator = Array.isArray(options.authenticator)
      ? options.authenticator[0]
      : options.authenticator;
    assert.ok(authenticator !== undefined);
    const token = tokenOf(authenticator("nonce"));
    assert.equal(token, source.current());
    assert.ok(!credentials.describe().includes(token));
  } finally {
    credentials.stop();
  }
});

Deno.test("oidcCredentials() renews the token in the background before it expires", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 3 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const source = sourceFor(idp, user);
  const credentials = oidcCredentials(source, { logger: silentLogger });
  try {
    await credentials.connectionOptions();
    const first = source.current();
    const firstExpiry = source.expiresAt ?? 0;
    await eventually("a renewed token", () => source.current() !== first, 5_000);
    assert.ok(Date.now() < firstExpiry, "renewed before the old token expired");
  } finally {
    credentials.stop();
  }
});

Deno.test("oidcCredentials() renews a stale token on reconnect after a long offline period", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  let now = Date.now();
  const source = sourceFor(idp, user, () => now);
  const credentials = oidcCredentials(source, {
    logger: silentLogger,
    now: () => now,
    retryDelayMs: 200,
  });
  try {
    const options = await credentials.connectionOptions();
    const authenticator = options.authenticator;
    assert.ok(typeof authenticator === "function");
    const first = tokenOf(authenticator());

    // Offline for an hour: the timer did not get to renew, the token expired meanwhile.
    await idp.stop();
    now += 3_600_000;
    credentials.onDisconnect(); // renewal fails: the provider is down
    assert.equal(tokenOf(authenticator()), first, "the stale token is all there is");
    await idp.start();
    // The next reconnect attempt notices the stale token and renews it right away.
    await eventually("a renewed token", () => tokenOf(authenticator()) !== first, 5_000);
  } finally {
    credentials.stop();
  }
});
