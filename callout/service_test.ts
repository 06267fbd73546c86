/**
 * The callout against a real nats-server started with the generated config, with a test
 * verifier that checks jose-signed tokens against a local key set. (The real OIDC provider
 * is exercised end to end in e2e/.)
 */

import assert from "node:assert/strict";
import {
  AuthorizationError,
  type NatsConnection,
  PermissionViolationError,
  RequestError,
  UserAuthenticationExpiredError,
} from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { generateKeyPair } from "jose";
import { ensureBucket, followDeviceConsumer, openBucket } from "../adapters/nats/mod.ts";
import { watchBucket } from "../adapters/nats/kv_watch.ts";
import { silentLogger } from "../adapters/logger.ts";
import { MetricsRegistry } from "../adapters/metrics.ts";
import { deviceConsumer } from "../core/mod.ts";
import { NatsDeviceConsumers } from "../operator/nats_device_consumers.ts";
import { captureLogger } from "../testing/nats.ts";
import { eventually } from "../testing/eventually.ts";
import { startCalloutFixture } from "../testing/callout.ts";

/** The cause chain of an error, for PermissionViolationError inside a RequestError. */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = err; e !== undefined && out.length < 5;) {
    out.push(e);
    e = e instanceof Error ? e.cause : undefined;
  }
  return out;
}

function isPermissionViolation(err: unknown): boolean {
  return causes(err).some((e) => e instanceof PermissionViolationError);
}

async function refused(connecting: Promise<NatsConnection>): Promise<Error> {
  try {
    const nc = await connecting;
    await nc.close();
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail("the connection was accepted");
}

for (const encrypted of [true, false]) {
  const mode = encrypted ? "with xkey encryption" : "unencrypted";
  Deno.test(`callout ${mode}: a device gets exactly its permissions on a real nats-server`, async () => {
    await using t = await startCalloutFixture(encrypted);

    // The operator role gets everything: it creates the buckets.
    const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
    const desired = await ensureBucket(operator, "desired-state", { replicas: 1, history: 3 });
    const heartbeats = await ensureBucket(operator, "device-heartbeat", {
      replicas: 1,
      history: 1,
    });
    await desired.put("dev-a.default.web", "for a");
    await desired.put("dev-b.default.web", "for b");
    await eventually(
      "the operator's allow line",
      () => t.lines.some((l) => l.includes(`Allowed operator "fleet-operator" on NATS`)),
    );

    const dev = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
    try {
      const errors: Error[] = [];
      (async () => {
        for await (const s of dev.status()) if (s.type === "error") errors.push(s.error);
      })().catch(() => {});

      // Its own heartbeat key: stored.
      const hb = await openBucket(dev, "device-heartbeat");
      await hb.put("heartbeat.dev-a", "1");
      assert.equal((await heartbeats.get("heartbeat.dev-a"))?.string(), "1");

      // Another device's key: denied by the server.
      const put = await hb.put("heartbeat.dev-b", "1").then(() => undefined, (e: unknown) => e);
      assert.ok(isPermissionViolation(put), `expected a permission violation, got ${put}`);
      assert.ok(put instanceof RequestError || put instanceof PermissionViolationError);
      assert.equal(await heartbeats.get("heartbeat.dev-b"), null);

      // Plain publish to another device's state: the server reports the violation.
      dev.publish("$KV.device-heartbeat.heartbeat.dev-b", "x");
      await eventually(
        "the publish violation",
        () =>
          errors.some((e) =>
            e instanceof PermissionViolationError && e.subject.includes("heartbeat.dev-b")
          ),
      );

      // Everyone's inbox: denied.
      const sub = dev.subscribe("_INBOX.>");
      const subError = await (async () => {
        try {
          for await (const _ of sub) return undefined;
        } catch (err) {
          return err;
        }
      })();
      assert.ok(subError instanceof PermissionViolationError, String(subError));
      assert.equal(subError.operation, "subscription");

      // Its desired state from the consumer the operator prepared: allowed; another device's
      // consumer, or a consumer of its own making (even on its own keys): refused.
      const consumers = new NatsDeviceConsumers({
        nc: operator,
        log: silentLogger,
        heartbeatMs: 1000,
      });
      await consumers.ensure("dev-a");
      await consumers.ensure("dev-b");
      const { logger, lines } = captureLogger();
      const controller = new AbortController();
      const seen: string[] = [];
      const own = (async () => {
        for await (
          const e of followDeviceConsumer({
            nc: dev,
            consumer: deviceConsumer("dev-a"),
            logger,
            signal: controller.signal,
          })
        ) seen.push(e.type === "put" ? `put ${e.key}` : e.type);
      })();
      const other = (async () => {
        for await (
          const e of followDeviceConsumer({
            nc: dev,
            consumer: deviceConsumer("dev-b"),
            logger,
            signal: controller.signal,
          })
        ) seen.push(`LEAK ${e.type}`);
      })();
      const made = (async () => {
        for await (
          const e of watchBucket({
            nc: dev,
            bucket: "desired-state",
            keyFilter: "dev-a.>",
            logger,
            signal: controller.signal,
          })
        ) seen.push(`OWN CONSUMER ${e.type}`);
      })();
      await eventually("its own desired state", () => seen.includes("ready"));
      await eventually(
        "the refused consumer of dev-b",
        () => lines.some((l) => l.includes('read its desired-state consumer "device-dev-b"')),
      );
      await eventually(
        "the refused consumer of its own making",
        () => lines.some((l) => l.includes("NATS does not allow this process to watch")),
      );
      controller.abort();
      await Promise.all([own, other, made]);
      assert.deepStrictEqual(seen, ["put dev-a.default.web", "ready"]);
    } finally {
      await dev.close();
      await operator.close();
    }

    // The callout said who it let in, and never logged a token.
    assert.ok(
      t.lines.some((l) =>
        /INFO {2}Allowed device "dev-a" on NATS .*role=device account=FLEET/.test(l)
      ),
      t.lines.join("\n"),
    );
    assert.ok(!t.lines.some((l) => /eyJ/.test(l)), t.lines.join("\n"));
    // The server encrypted the exchange exactly when the config has an xkey.
    const allowed = t.lines.filter((l) => l.includes("Allowed"));
    assert.ok(allowed.length >= 2);
    assert.ok(allowed.every((l) => l.includes("encrypted=true") === encrypted), allowed.join("\n"));
  });
}

Deno.test("callout: bad tokens are refused and the callout logs why", async () => {
  await using t = await startCalloutFixture(true);
  const forger = await generateKeyPair("ES256");
  const cases: [string, Promise<string> | string, RegExp][] = [
    ["not a JWT", "garbage", /Refused a NATS connection: the token was rejected: /],
    [
      "forged signature",
      t.mint("dev-a", ["fleet-device"], { signer: forger.privateKey }),
      /the token was rejected: signature verification failed/,
    ],
    [
      "unknown role",
      t.mint("dev-a", ["viewer"]),
      /the token's "roles" claim has the roles "viewer", none of which is a Fleet role/,
    ],
    [
      "wildcard device id",
      t.mint("dev.>", ["fleet-device"]),
      /invalid device id "dev\.>" \(from the "sub" claim\): dots and the wildcards/,
    ],
    [
      "expired",
      t.mint("dev-a", ["fleet-device"], { expiresInSeconds: -10 }),
      /the token was rejected: .*"exp" claim timestamp check failed/,
    ],
  ];
  for (const [what, token, logged] of cases) {
    const err = await refused(t.connectAs(await token));
    assert.ok(
      err instanceof AuthorizationError || /authorization/i.test(err.message),
      `${what}: ${err.name} ${err.message}`,
    );
    await eventually(`the log line for ${what}`, () => t.lines.some((l) => logged.test(l)));
  }
  // User and password instead of a token: not for the callout.
  const err = await refused(
    connect({ servers: t.ns.url, user: "someone", pass: "pw", reconnect: false }),
  );
  assert.ok(err instanceof AuthorizationError, `${err.name} ${err.message}`);
  await eventually(
    "the credentials line",
    () => t.lines.some((l) => l.includes("the client presented a user name and password instead")),
  );
  assert.equal(t.service.stats.allowed, 0);
  assert.equal(t.service.stats.refused, cases.length + 1);
  assert.ok(!t.lines.some((l) => l.includes("garbage")), t.lines.join("\n"));
});

Deno.test("callout: the server disconnects a user when its token's expiry is reached", async () => {
  await using t = await startCalloutFixture(false);
  const nc = await t.connectAs(await t.mint("dev-a", ["fleet-device"], { expiresInSeconds: 3 }));
  const expired = (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.error instanceof UserAuthenticationExpiredError) return true;
    }
    return false;
  })();
  const closed = await Promise.race([
    expired,
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 8_000)),
  ]);
  await nc.close();
  assert.ok(closed, "the connection outlived the token");
});

Deno.test("callout: an xkey that does not match the server's is logged, and nobody gets in", async () => {
  for (const serviceXkey of ["none", "other"] as const) {
    await using t = await startCalloutFixture(true, serviceXkey);
    const err = await refused(t.connectAs(await t.mint("dev-a", ["fleet-device"])));
    assert.ok(err instanceof AuthorizationError, `${err.name} ${err.message}`);
    const expected = serviceXkey === "none"
      ? "The server encrypts authorization requests but no xkey is configured"
      : "Cannot decrypt an authorization request";
    assert.ok(t.lines.some((l) => l.includes(`ERROR ${expected}`)), t.lines.join("\n"));
    assert.equal(t.service.stats.dropped, 1);
  }
});

Deno.test("callout: with an xkey configured, an unencrypted authorization request is refused", async () => {
  // The server's auth_callout block has no xkey; the service has one.
  await using t = await startCalloutFixture(false, "other");
  const err = await refused(t.connectAs(await t.mint("dev-a", ["fleet-device"])));
  assert.ok(err instanceof AuthorizationError, `${err.name} ${err.message}`);
  assert.ok(
    t.lines.some((l) =>
      l.includes("WARN  Refused a NATS connection: the authorization request was not encrypted") &&
      l.includes(`give the server's auth_callout block xkey: "X`)
    ),
    t.lines.join("\n"),
  );
  assert.equal(t.service.stats.allowed, 0);
  assert.equal(t.service.stats.refused, 1);
});

/** How many authorization requests a callout answered, from its metrics. */
function answered(metrics: MetricsRegistry): number {
  return [...metrics.text().matchAll(/^fleet_callout_authorizations_total\{[^}]*\} (\d+)$/gm)]
    .reduce((sum, match) => sum + Number(match[1]), 0);
}

Deno.test("callout: two callouts share the requests as a queue group, each answered once", async () => {
  const [one, two] = [new MetricsRegistry(), new MetricsRegistry()];
  await using t = await startCalloutFixture(true, "configured", one);
  await using _second = await t.startCallout(two);
  const devices = 30;
  for (let i = 0; i < devices; i++) {
    const nc = await t.connectAs(await t.mint(`dev-${i}`, ["fleet-device"]), `dev-${i}`);
    await nc.close();
  }
  // Without the queue group both would answer every request: twice as many.
  await eventually("every request counted", () => answered(one) + answered(two) === devices);
  assert.ok(answered(one) > 0 && answered(two) > 0, `${answered(one)} and ${answered(two)}`);
});
