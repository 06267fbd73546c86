/**
 * Attacks on the roles and limits of the broker (issue 12, item 1), on a real nats-server with
 * users issued by the real auth callout: what a viewer, a maintainer, the operator service and
 * a device may not do with their own tokens, and that the buckets and the account hold their
 * size limits. Every attack must fail and leave what others wrote as it was.
 */
import assert from "node:assert/strict";
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { Msg, NatsConnection, Status } from "@nats-io/nats-core";
import {
  ACCOUNT_CONNECTION_LIMITS,
  bucketLimits,
  Buckets,
  keys,
  principalOf,
} from "../../core/mod.ts";
import { silentLogger } from "../../adapters/logger.ts";
import { systemClock } from "../../adapters/clock.ts";
import { openBucket } from "../../adapters/nats/mod.ts";
import { NatsDeploymentStore } from "../../cli/nats_store.ts";
import { NatsBucketKeeper } from "../../operator/nats_bucket_keeper.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { refused } from "./_refused.ts";
import { eventually } from "../../testing/eventually.ts";
import { webDeployment } from "../_helpers.ts";

/** The issuer of the fixture's tokens (testing/callout.ts). */
const ISSUER = "https://idp.test/realms/fleet";
const REF = { namespace: "default", name: "web" };
const LAB = { matchLabels: { site: "lab" } };

/**
 * What nats-server answers a client that ignores the payload limit it was told: connects
 * with `token` over the plain protocol and publishes `size` bytes on `subject`.
 */
async function rawPublish(port: number, token: string, subject: string, size: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const decoder = new TextDecoder();
  let received = "";
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return;
      received += decoder.decode(buffer.subarray(0, n));
    }
  })();
  try {
    const send = (text: string | Uint8Array) =>
      conn.write(typeof text === "string" ? new TextEncoder().encode(text) : text);
    await eventually("the server's INFO", () => received.startsWith("INFO"));
    await send(`CONNECT ${JSON.stringify({ auth_token: token, verbose: false })}\r\nPING\r\n`);
    await eventually("admission through the callout", () => received.includes("PONG"));
    await send(`PUB ${subject} ${size}\r\n`);
    await send(new Uint8Array(size)).catch(() => {}); // the server may hang up mid-way
    await send("\r\n").catch(() => {});
    await eventually("the server's answer", () => received.includes("-ERR") || undefined);
    return received;
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed by the server.
    }
    await reading;
  }
}

/** The server's errors on a connection, as they arrive. */
function errorsOf(nc: NatsConnection): Error[] {
  const errors: Error[] = [];
  (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === "error") errors.push(s.error);
    }
  })().catch(() => {});
  return errors;
}

/** Every value of the report buckets and of the control plane's buckets. */
async function snapshot(nc: NatsConnection): Promise<string[]> {
  const out: string[] = [];
  for (const bucket of Object.values(Buckets)) {
    const kv = await openBucket(nc, bucket);
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      out.push(`${bucket} ${key} ${entry?.operation} ${entry?.string()}`);
    }
  }
  return out.sort();
}

Deno.test("Roles and limits: people, the operator and devices get only their own rights, and sizes are bounded", async () => {
  await using t = await startCalloutFixture(false);
  const admin = await t.connectAs(await t.mint("ada", ["fleet-admin"]));
  const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
  const viewer = await t.connectAs(await t.mint("bob", ["fleet-viewer"]));
  const maintainer = await t.connectAs(await t.mint("mia", ["fleet-maintainer"]));
  const devA = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
  const devB = await t.connectAs(await t.mint("dev-b", ["fleet-device"]), "dev-b");
  const bob = principalOf(ISSUER, "bob");
  const mia = principalOf(ISSUER, "mia");
  const op = principalOf(ISSUER, "fleet-operator");
  try {
    // Buckets as an older Fleet made them, without size limits, holding dev-b's reports.
    for (const bucket of Object.values(Buckets)) await new Kvm(admin).create(bucket);
    const stateB = keys.deviceState("dev-b", REF);
    await (await openBucket(devB, Buckets.deviceState)).put(stateB, "dev-b state");
    await (await openBucket(devB, Buckets.deviceInfo)).put(keys.deviceInfo("dev-b"), "dev-b info");
    // The operator's start-up gives them their limits in place.
    const keeper = new NatsBucketKeeper({
      nc: operator,
      log: silentLogger,
      replicas: 1,
      clock: systemClock,
    });
    assert.equal(await keeper.ensureAll(new AbortController().signal), true);
    assert.deepEqual(await keeper.applyLimits(), { changed: [], overfull: [] });

    // What each role is for still works: a maintainer applies, the operator writes desired
    // state, a viewer reads what `fleet get` shows.
    const asMaintainer = new NatsDeploymentStore(maintainer, silentLogger);
    assert.equal(
      (await asMaintainer.apply(webDeployment({ name: "web", selector: LAB }))).outcome,
      "created",
    );
    await (await openBucket(operator, Buckets.desiredState))
      .put(keys.desiredState("dev-b", REF), "dev-b desired");
    const asViewer = new NatsDeploymentStore(viewer, silentLogger);
    assert.deepEqual((await asViewer.deployments()).map((r) => r.deployment.metadata.name), [
      "web",
    ]);
    await asViewer.devices();

    // dev-a listens to its commands and answers pings.
    const commands: string[] = [];
    devA.subscribe("device-commands.dev-a.>", {
      callback: (_err, m: Msg) => {
        commands.push(m.subject);
        if (m.reply) m.respond("pong");
      },
    });
    await devA.flush();
    const before = await snapshot(admin);

    // A viewer: no deployment, no desired state, no restart; a ping in its own name only.
    await refused(
      "viewer applies a deployment",
      () => asViewer.apply(webDeployment({ name: "evil", selector: LAB })),
    );
    await refused("viewer deletes a deployment", () => asViewer.delete(REF));
    await refused(
      "viewer writes desired state",
      async () =>
        await (await openBucket(viewer, Buckets.desiredState))
          .put(keys.desiredState("dev-a", REF), "evil"),
    );
    await refused(
      "viewer restarts a device",
      () => viewer.request(`device-commands.dev-a.restart.${bob}`, "", { timeout: 5_000 }),
    );
    await refused(
      "viewer pings in the maintainer's name",
      () => viewer.request(`device-commands.dev-a.ping.${mia}`, "", { timeout: 5_000 }),
    );
    assert.equal(
      (await viewer.request(`device-commands.dev-a.ping.${bob}`, "", { timeout: 5_000 }))
        .string(),
      "pong",
    );

    // The consumer the operator prepares for a device's desired state: no person takes it over,
    // whatever filter the request names (without an action, a create updates a consumer).
    const desiredStream = `KV_${Buckets.desiredState}`;
    const prepared = {
      durable_name: "device-dev-a",
      filter_subject: `$KV.${Buckets.desiredState}.dev-a.>`,
      deliver_subject: "_INBOX_dev-a.desired-state",
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.LastPerSubject,
    };
    const operatorJsm = await jetstreamManager(operator, { checkAPI: false });
    await operatorJsm.consumers.add(desiredStream, prepared);
    for (const [who, nc] of [["viewer", viewer], ["maintainer", maintainer]] as const) {
      for (const filter of ["dev-a.>", "*.agent-conflict", ">"]) {
        const config = {
          ...prepared,
          filter_subject: `$KV.${Buckets.desiredState}.${filter}`,
          deliver_subject: `_INBOX_p_${who === "viewer" ? bob : mia}.stolen`,
        };
        await refused(
          `${who} rewrites dev-a's desired-state consumer to ${filter}`,
          () =>
            nc.request(
              `$JS.API.CONSUMER.CREATE.${desiredStream}.device-dev-a.${config.filter_subject}`,
              JSON.stringify({ stream_name: desiredStream, config }),
              { timeout: 5_000 },
            ),
        );
      }
    }
    const kept = (await operatorJsm.consumers.info(desiredStream, "device-dev-a")).config;
    assert.equal(kept.filter_subject, prepared.filter_subject);
    assert.equal(kept.deliver_subject, prepared.deliver_subject);

    // A maintainer: restarts in its own name, never in someone else's.
    await refused(
      "maintainer restarts in the viewer's name",
      () => maintainer.request(`device-commands.dev-a.restart.${bob}`, "", { timeout: 5_000 }),
    );
    await refused(
      "maintainer restarts in the operator's name",
      () => maintainer.request(`device-commands.dev-a.restart.${op}`, "", { timeout: 5_000 }),
    );
    await maintainer.request(`device-commands.dev-a.restart.${mia}`, "", { timeout: 5_000 });

    // The operator service: no command at all, no device's report.
    for (const verb of ["restart", "ping", "exec"]) {
      await refused(
        `operator sends ${verb}`,
        () => operator.request(`device-commands.dev-a.${verb}.${op}`, "", { timeout: 5_000 }),
      );
    }
    await refused(
      "operator writes a device's state",
      async () =>
        await (await openBucket(operator, Buckets.deviceState)).put(stateB, "forged", {
          timeout: 5_000,
        }),
    );
    await refused(
      "operator writes a device's heartbeat",
      async () =>
        await (await openBucket(operator, Buckets.deviceHeartbeat))
          .put(keys.heartbeat("dev-b"), "{}", { timeout: 5_000 }),
    );
    await refused(
      "operator deletes a bucket",
      () =>
        operator.request(`$JS.API.STREAM.DELETE.KV_${Buckets.deviceState}`, "", {
          timeout: 5_000,
        }),
    );

    // Only the allowed commands reached the device.
    assert.deepEqual(commands, [
      `device-commands.dev-a.ping.${bob}`,
      `device-commands.dev-a.restart.${mia}`,
    ]);

    // A value over the bucket's limit on its own state key: refused, nothing stored.
    const stateA = keys.deviceState("dev-a", REF);
    const ownState = await openBucket(devA, Buckets.deviceState);
    const oversize = new Uint8Array(bucketLimits(Buckets.deviceState).maxValueSize + 1);
    await assert.rejects(() => ownState.put(stateA, oversize), /message size exceeds maximum/);
    const info = await openBucket(devA, Buckets.deviceInfo);
    await assert.rejects(
      () =>
        info.put(
          keys.deviceInfo("dev-a"),
          new Uint8Array(bucketLimits(Buckets.deviceInfo).maxValueSize + 1),
        ),
      /message size exceeds maximum/,
    );
    assert.equal(await (await openBucket(admin, Buckets.deviceState)).get(stateA), null);

    // A device that opens many subscriptions hits the limit; its connection keeps working.
    const errorsA = errorsOf(devA);
    for (let i = 0; i < ACCOUNT_CONNECTION_LIMITS.maxSubscriptions + 10; i++) {
      devA.subscribe(`device-commands.dev-a.flood.${i}`);
    }
    await devA.flush();
    await eventually(
      "the server's refusal of the extra subscriptions",
      () => errorsA.some((e) => /maximum subscriptions exceeded/i.test(e.message)),
    );

    // A message over the account's payload limit: an honest client is told the limit, and a
    // client that ignores it is cut off by the server, the message dropped.
    assert.equal(devB.info?.max_payload, ACCOUNT_CONNECTION_LIMITS.maxPayload);
    const answer = await rawPublish(
      t.ns.port,
      await t.mint("dev-a", ["fleet-device"]),
      `$KV.${Buckets.deviceState}.${stateA}`,
      ACCOUNT_CONNECTION_LIMITS.maxPayload + 1,
    );
    assert.match(answer, /-ERR 'Maximum Payload Violation'/);

    // Nothing another identity wrote was lost or changed.
    assert.deepEqual(await snapshot(admin), before);
    assert.ok(before.includes(`device-state ${stateB} PUT dev-b state`), before.join("\n"));
    assert.ok(before.some((l) => l.startsWith("fleet-deployments default.web PUT")));
  } finally {
    for (const nc of [devA, devB, maintainer, viewer, operator, admin]) {
      if (!nc.isClosed()) await nc.close();
    }
  }
});
