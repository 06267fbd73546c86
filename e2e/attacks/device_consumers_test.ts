/**
 * Attack: a device makes the server publish where the device itself may not (issue 12, item
 * 1, "a device cannot create consumers of its own choosing").
 *
 * Before: a device's user could create a consumer on its own desired-state keys, and whoever
 * creates a consumer chooses its `deliver_subject`: the server then published that device's
 * desired state on another device's inbox, or on any subject at all (a JetStream API subject
 * included), as a confused deputy. Now the operator prepares one consumer per device, the
 * device may only receive it on its own inbox, ask for its info and delete it; every consumer
 * it tries to create, every other device's consumer, is refused by the broker, and nothing is
 * lost. The attacker is dev-a's callout-issued user on a real nats-server.
 */
import assert from "node:assert/strict";
import { nanos, type NatsConnection, PermissionViolationError } from "@nats-io/nats-core";
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import { Buckets, deviceConsumer, deviceInboxPrefix, keys } from "../../core/mod.ts";
import { type CredentialSource, ensureBucket, openBucket } from "../../adapters/nats/mod.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { keepDeviceConsumers, runTestAgent } from "../../testing/agents.ts";
import { MemoryRuntime } from "../../testing/memory_runtime.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import { eventually } from "../../testing/eventually.ts";

const WEB = { namespace: "default", name: "web" };

function desired(image: string): string {
  return JSON.stringify({
    namespace: "default",
    name: "web",
    generation: 1,
    score: { type: "PodmanV0", data: { services: [{ name: "web", image }] } },
  });
}

/** Whether `err`, or an error it was caused by, is the broker's permission violation. */
function isPermissionViolation(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (e instanceof PermissionViolationError) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

async function refused(what: string, attempt: () => Promise<unknown>): Promise<void> {
  const outcome = await attempt().then(() => "accepted", (err: unknown) => err);
  assert.ok(
    isPermissionViolation(outcome),
    `${what}: expected a permission violation, got ${outcome}`,
  );
}

/** Everything published on `subject` while the test runs, as `nc` sees it. */
function eavesdrop(nc: NatsConnection, subject: string): string[] {
  const seen: string[] = [];
  nc.subscribe(subject, {
    callback: (err, m) => {
      seen.push(err ? `cannot listen: ${err.message}` : `${m.subject}: ${m.string()}`);
    },
  });
  return seen;
}

Deno.test("attack: a device cannot create a consumer that delivers anywhere, nor use another device's; its agent still reads its desired state", async () => {
  await using t = await startCalloutFixture(true);
  const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
  const desiredKv = await ensureBucket(operator, Buckets.desiredState, { replicas: 1, history: 3 });
  const states = await ensureBucket(operator, Buckets.deviceState, { replicas: 1, history: 3 });
  await ensureBucket(operator, Buckets.deviceInfo, { replicas: 1, history: 1 });
  await ensureBucket(operator, Buckets.deviceHeartbeat, { replicas: 1, history: 1 });
  await desiredKv.put(keys.desiredState("dev-a", WEB), desired("localhost/web:a"));
  await desiredKv.put(keys.desiredState("dev-b", WEB), desired("localhost/web:b"));
  // dev-b writes its report and listens on its own inbox, where dev-a would send its loot.
  const devB = await t.connectAs(await t.mint("dev-b", ["fleet-device"]), "dev-b");
  await (await openBucket(devB, Buckets.deviceState))
    .put(keys.deviceState("dev-b", WEB), '{"phase":"Running"}');
  await using _consumers = await keepDeviceConsumers(operator, ["dev-a", "dev-b"]);
  const jsm = await jetstreamManager(operator);
  const consumerB = deviceConsumer("dev-b");
  const bBefore = await jsm.consumers.info(consumerB.stream, consumerB.name);
  const stolen = eavesdrop(devB, `${deviceInboxPrefix("dev-b")}.>`);
  await devB.flush();

  const attacker = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
  try {
    const devJsm = await jetstreamManager(attacker, { checkAPI: false });
    const own = `$KV.${Buckets.desiredState}.dev-a.>`;
    for (
      const deliver of [
        `${deviceInboxPrefix("dev-b")}.stolen`,
        `$JS.API.STREAM.DELETE.KV_${Buckets.deviceState}`,
      ]
    ) {
      // The new API (name and filter in the subject) and the legacy durable one.
      await refused(
        `a push consumer on its own keys delivering to ${deliver}`,
        () =>
          devJsm.consumers.add(`KV_${Buckets.desiredState}`, {
            name: "evil",
            filter_subject: own,
            deliver_subject: deliver,
            deliver_policy: DeliverPolicy.LastPerSubject,
            ack_policy: AckPolicy.None,
            idle_heartbeat: nanos(1000),
          }),
      );
      await refused(`a durable consumer delivering to ${deliver}`, () =>
        attacker.request(
          `$JS.API.CONSUMER.DURABLE.CREATE.KV_${Buckets.desiredState}.evil`,
          JSON.stringify({
            stream_name: `KV_${Buckets.desiredState}`,
            config: { durable_name: "evil", filter_subject: own, deliver_subject: deliver },
          }),
          { timeout: 2000 },
        ));
    }
    // Its own consumer cannot be re-made either: that would choose its delivery subject.
    await refused(
      "re-creating its own consumer",
      () =>
        devJsm.consumers.add(`KV_${Buckets.desiredState}`, {
          durable_name: "device-dev-a",
          filter_subject: own,
          deliver_subject: `${deviceInboxPrefix("dev-b")}.stolen`,
        }),
    );
    // Another device's consumer: neither its info, nor deleting it, nor its deliveries.
    await refused(
      "the info of dev-b's consumer",
      () => devJsm.consumers.info(consumerB.stream, consumerB.name),
    );
    await refused(
      "deleting dev-b's consumer",
      () => devJsm.consumers.delete(consumerB.stream, consumerB.name),
    );
    const sub = attacker.subscribe(consumerB.deliverSubject);
    await refused("subscribing to dev-b's deliveries", async () => {
      for await (const _ of sub) return;
    });
    await refused("pulling from dev-b's consumer", () =>
      attacker.request(
        `$JS.API.CONSUMER.MSG.NEXT.${consumerB.stream}.${consumerB.name}`,
        JSON.stringify({ batch: 1 }),
        { timeout: 2000 },
      ));
  } finally {
    await attacker.close();
  }

  // The real agent of dev-a, with its callout-issued user, still reads its desired state.
  const token = await t.mint("dev-a", ["fleet-device"]);
  const credentials: CredentialSource = {
    kind: "token",
    bearer: true,
    connectionOptions: () => Promise.resolve({ token, inboxPrefix: deviceInboxPrefix("dev-a") }),
    describe: () => "a test token",
  };
  const stateDir = await Deno.makeTempDir({ prefix: "fleet-attack-" });
  const runtime = new MemoryRuntime("dev-a");
  const agent = runTestAgent({
    deviceId: "dev-a",
    stateDir,
    natsUrl: t.ns.url,
    runtime,
    clock: new FakeClock(Date.parse("2026-02-01T06:00:00Z")),
    credentials,
  });
  try {
    await eventually(
      "dev-a's agent ran its deployment",
      () => runtime.containers.some((c) => c.name === "fleet_dev-a_default_web_web"),
    ).catch((e) => {
      console.log(agent.lines.join("\n"));
      throw e;
    });
    await desiredKv.put(keys.desiredState("dev-a", WEB), desired("localhost/web:a2"));
    await eventually(
      "a live update",
      () => runtime.calls.includes("ensureImage localhost/web:a2"),
    );
  } finally {
    await agent.stop();
    await Deno.remove(stateDir, { recursive: true });
  }

  // Nothing was delivered where it should not be, and nothing is lost.
  await devB.flush();
  assert.deepEqual(stolen, [], "nothing reached dev-b's inbox");
  await devB.close();
  for (const bucket of [Buckets.desiredState, Buckets.deviceState]) {
    assert.ok(await jsm.streams.info(`KV_${bucket}`), `${bucket} is still there`);
  }
  assert.equal(
    (await desiredKv.get(keys.desiredState("dev-b", WEB)))?.string(),
    desired("localhost/web:b"),
  );
  assert.equal(
    (await states.get(keys.deviceState("dev-b", WEB)))?.string(),
    '{"phase":"Running"}',
  );
  const bAfter = await jsm.consumers.info(consumerB.stream, consumerB.name);
  assert.equal(bAfter.created, bBefore.created, "dev-b's consumer is the same one");
  assert.equal(bAfter.config.deliver_subject, consumerB.deliverSubject);
  const names = await operator.request(
    `$JS.API.CONSUMER.NAMES.KV_${Buckets.desiredState}`,
    "{}",
  );
  assert.deepEqual(
    names.json<{ consumers: string[] }>().consumers.sort(),
    ["device-dev-a", "device-dev-b"],
    "no consumer of the attacker's",
  );
  await operator.close();
});
