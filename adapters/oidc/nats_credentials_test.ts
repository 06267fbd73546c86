import assert from "node:assert/strict";
import type { Auth, TokenAuth } from "@nats-io/nats-core";
import { createLogger, silentLogger } from "../logger.ts";
import type { Clock } from "../../core/clock.ts";
import { eventually } from "../../testing/eventually.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import { decodeJwt } from "jose";
import { principalInboxPrefix, principalOf } from "../../core/principal.ts";
import { oidcCredentials, principalInbox } from "./nats_credentials.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../../testing/oidc_provider.ts";
import { createTokenSource, type TokenSource } from "./token_source.ts";

function sourceFor(idp: TestProvider, user: MachineUser, clock?: Clock): TokenSource {
  return createTokenSource({
    issuer: idp.issuer,
    clientId: user.clientId,
    privateKeyJwk: user.privateKeyJwk,
    grant: "jwt-bearer",
    audience: idp.audience,
    logger: silentLogger,
    fetchTimeoutMs: 1_000,
    ...(clock !== undefined ? { clock } : {}),
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

Deno.test("oidcCredentials() with principalInbox uses the inbox of the token's principal", async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] });
  const source = sourceFor(idp, user);
  const credentials = oidcCredentials(source, { inboxPrefix: principalInbox });
  try {
    const options = await credentials.connectionOptions();
    const claims = decodeJwt(source.current() ?? "");
    // The callout derives the same principal from the verified claims (core/principal.ts).
    assert.equal(
      options.inboxPrefix,
      principalInboxPrefix(principalOf(claims.iss ?? "", claims.sub ?? "")),
    );
    assert.match(options.inboxPrefix ?? "", /^_INBOX_p_[a-z0-9-]+$/);
  } finally {
    credentials.stop();
  }
  assert.throws(() => principalInbox("not-a-jwt"));
});

Deno.test("oidcCredentials() renews the token in the background at its refresh time", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 3 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  // Starts at the real time: the provider checks the assertions' iat and exp by its own clock.
  const clock = new FakeClock(Date.now());
  const source = sourceFor(idp, user, clock);
  const credentials = oidcCredentials(source, { logger: silentLogger, clock });
  try {
    await credentials.connectionOptions();
    const first = source.current();
    const firstExpiry = source.expiresAt ?? 0;
    const refreshAt = source.refreshAt ?? 0;
    await clock.advance(refreshAt - clock.now() - 1);
    assert.equal(source.current(), first, "not renewed before its refresh time");
    await clock.advance(1);
    await eventually("a renewed token", () => source.current() !== first, 5_000);
    assert.ok(clock.now() < firstExpiry, "renewed before the old token expired");

    // The next renewal is scheduled at the new token's refresh time.
    const second = source.current();
    await eventually("the next renewal scheduled", () => clock.pendingTimers === 1, 5_000);
    await clock.advance((source.refreshAt ?? 0) - clock.now());
    await eventually("a second renewal", () => source.current() !== second, 5_000);
  } finally {
    credentials.stop();
  }
  assert.equal(clock.pendingTimers, 0, "stop() cancels the renewal timer");
});

Deno.test("oidcCredentials() retries a failed renewal with a doubling, capped backoff", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const source = sourceFor(idp, user, clock);
  const lines: string[] = [];
  const credentials = oidcCredentials(source, {
    logger: createLogger({ timestamps: false, write: (line) => lines.push(line) }),
    clock,
    retryDelayMs: 200,
    maxRetryDelayMs: 500,
  });
  const attempts = () => lines.filter((l) => l.includes("Cannot renew the NATS access token"));
  try {
    await credentials.connectionOptions();
    await idp.stop();
    await clock.advance((source.refreshAt ?? 0) - clock.now());
    await eventually("the first failed renewal", () => attempts().length === 1, 5_000);
    // Waits after each failure: 200, 400, then 500 (capped) twice.
    for (const [n, wait] of [[2, 200], [3, 400], [4, 500], [5, 500]] as const) {
      await eventually("the retry scheduled", () => clock.pendingTimers === 1, 5_000);
      await clock.advance(wait - 1);
      assert.equal(attempts().length, n - 1, `no retry ${n} before ${wait} ms`);
      await clock.advance(1);
      await eventually(`retry ${n}`, () => attempts().length === n, 5_000);
    }
    assert.match(attempts()[0] ?? "", /^WARN .*; will retry/);
    assert.match(attempts()[4] ?? "", /attempt=5/);

    await idp.start();
    await eventually("the retry scheduled", () => clock.pendingTimers === 1, 5_000);
    const stale = source.current();
    await clock.advance(500);
    await eventually("a renewed token", () => source.current() !== stale, 5_000);
  } finally {
    credentials.stop();
  }
});

Deno.test("oidcCredentials() renews a stale token on reconnect after the machine slept", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const source = sourceFor(idp, user, clock);
  const credentials = oidcCredentials(source, { logger: silentLogger, clock });
  try {
    const options = await credentials.connectionOptions();
    const authenticator = options.authenticator;
    assert.ok(typeof authenticator === "function");
    const first = tokenOf(authenticator());

    // Asleep for an hour: the wall clock moved on, the renewal timer did not fire, and the
    // token expired meanwhile.
    clock.jump(3_600_000);
    assert.equal(tokenOf(authenticator()), first, "the stale token is all there is for now");
    // That attempt noticed the stale token and renews it, without waiting for any timer.
    await eventually("a renewed token", () => tokenOf(authenticator()) !== first, 5_000);
    assert.equal(source.expiresAt, clock.now() + 60_000);
  } finally {
    credentials.stop();
  }
});

Deno.test("oidcCredentials().onDisconnect() renews a stale token, and a failure waits for the backoff", async () => {
  await using idp = await startTestProvider({ accessTokenTtlSeconds: 60 });
  const user = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
  const clock = new FakeClock(Date.now());
  const source = sourceFor(idp, user, clock);
  const credentials = oidcCredentials(source, { logger: silentLogger, clock, retryDelayMs: 200 });
  try {
    const options = await credentials.connectionOptions();
    const authenticator = options.authenticator;
    assert.ok(typeof authenticator === "function");
    const first = tokenOf(authenticator());

    await idp.stop();
    clock.jump(3_600_000);
    credentials.onDisconnect(); // renewal fails: the provider is down
    await eventually("the retry scheduled", () => clock.pendingTimers === 1, 5_000);
    await idp.start();
    // Connect attempts do not pile renewals onto the backoff: only its timer retries.
    assert.equal(tokenOf(authenticator()), first);
    assert.equal(source.current(), first);
    await clock.advance(200);
    await eventually("a renewed token", () => tokenOf(authenticator()) !== first, 5_000);
  } finally {
    credentials.stop();
  }
});
