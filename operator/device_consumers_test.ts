/** The device-consumer controller with its NATS adapter, on a real nats-server. */
import assert from "node:assert/strict";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { Buckets, deviceConsumer } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { connectNats, ensureBucket, noCredentials } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { eventually } from "../testing/eventually.ts";
import { DeviceConsumerKeeper } from "./device_consumers.ts";
import { NatsDeviceConsumers } from "./nats_device_consumers.ts";

const STREAM = `KV_${Buckets.desiredState}`;

async function names(jsm: JetStreamManager): Promise<string[]> {
  const all: string[] = [];
  for await (const c of jsm.consumers.list(STREAM)) all.push(c.name);
  return all.sort();
}

async function setup(heartbeatMs = 1000) {
  const ns = await startNatsServer();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "device-consumers-test",
    logger: silentLogger,
  });
  await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 3 });
  const devices = new Set<string>();
  let complete = false;
  const controller = new AbortController();
  const keeper = new DeviceConsumerKeeper({
    store: new NatsDeviceConsumers({ nc, log: silentLogger, heartbeatMs }),
    devices,
    complete: () => complete,
    clock: systemClock,
    log: silentLogger,
    intervalMs: 3_600_000,
  });
  const running = keeper.run(controller.signal);
  return {
    ns,
    nc,
    jsm: await jetstreamManager(nc),
    devices,
    keeper,
    registryRead: () => complete = true,
    async [Symbol.asyncDispose]() {
      controller.abort();
      await running;
      await nc.close();
      await ns[Symbol.asyncDispose]();
    },
  };
}

Deno.test("DeviceConsumerKeeper: the audit gives every known device its consumer and removes those of devices that left, touching no other", async () => {
  await using s = await setup();
  await s.jsm.consumers.add(STREAM, { durable_name: "someone-elses", filter_subject: ">" });
  await new NatsDeviceConsumers({ nc: s.nc, log: silentLogger, heartbeatMs: 1000 })
    .ensure("gone-1");
  s.devices.add("pi-1").add("pi-2");
  await s.keeper.audit();
  assert.deepEqual(
    await names(s.jsm),
    ["device-gone-1", "someone-elses"],
    "not before the registry is read",
  );

  s.registryRead();
  await s.keeper.audit();
  assert.deepEqual(await names(s.jsm), ["device-pi-1", "device-pi-2", "someone-elses"]);
  const info = await s.jsm.consumers.info(STREAM, "device-pi-1");
  const expected = deviceConsumer("pi-1");
  assert.equal(info.config.deliver_subject, expected.deliverSubject);
  assert.equal(info.config.filter_subject, expected.filterSubject);
  assert.equal(info.config.deliver_policy, "last_per_subject");
  assert.equal(info.config.ack_policy, "none");
  assert.equal(info.config.mem_storage, true);
});

Deno.test("DeviceConsumerKeeper: a device that joins gets its consumer, one deleted comes back at once, one that leaves goes", async () => {
  await using s = await setup();
  s.registryRead();
  s.devices.add("pi-1");
  s.keeper.deviceJoined("pi-1");
  await eventually("pi-1's consumer", async () => (await names(s.jsm)).includes("device-pi-1"));
  const created = (await s.jsm.consumers.info(STREAM, "device-pi-1")).created;

  await s.jsm.consumers.delete(STREAM, "device-pi-1"); // what an agent does to read again
  await eventually(
    "pi-1's consumer re-created",
    async () =>
      (await s.jsm.consumers.info(STREAM, "device-pi-1").catch(() => undefined))
          ?.created !== created &&
      (await names(s.jsm)).includes("device-pi-1"),
  );

  s.devices.delete("pi-1");
  await s.keeper.deviceLeft("pi-1");
  assert.deepEqual(await names(s.jsm), []);
});

Deno.test("DeviceConsumerKeeper: consumers lost with the bucket or a broker restart come back", async () => {
  await using s = await setup();
  s.registryRead();
  s.devices.add("pi-1");
  await s.keeper.audit();
  // The broker keeps them in memory: a restart loses them, the reconnect brings them back.
  await s.ns.restart();
  await eventually("re-created after the reconnect", async () => {
    try {
      return (await names(s.jsm)).includes("device-pi-1");
    } catch {
      return false;
    }
  });
  await s.jsm.streams.delete(STREAM);
  await ensureBucket(s.nc, Buckets.desiredState, { replicas: 1, history: 3 });
  await s.keeper.audit();
  assert.deepEqual(await names(s.jsm), ["device-pi-1"]);
});

Deno.test("NatsDeviceConsumers.ensure() re-creates a consumer made with other settings", async () => {
  await using s = await setup(1000);
  await new NatsDeviceConsumers({ nc: s.nc, log: silentLogger, heartbeatMs: 5000 }).ensure("pi-1");
  await new NatsDeviceConsumers({ nc: s.nc, log: silentLogger, heartbeatMs: 1000 }).ensure("pi-1");
  const info = await s.jsm.consumers.info(STREAM, "device-pi-1");
  assert.equal(info.config.idle_heartbeat, 1_000_000_000);
});

Deno.test("DeviceConsumerKeeper.run() ends at once when stopped before it started", async () => {
  await using s = await setup();
  const stopped = new AbortController();
  stopped.abort();
  await s.keeper.run(stopped.signal);
});
