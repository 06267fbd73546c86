import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Buckets, deviceConsumer } from "../../core/mod.ts";
import { silentLogger } from "../logger.ts";
import { ensureBucket } from "./buckets.ts";
import { connectNats } from "./connection.ts";
import { noCredentials } from "./credentials.ts";
import { followDeviceConsumer } from "./device_feed.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { keepDeviceConsumers } from "../../testing/agents.ts";
import { captureLogger, show } from "../../testing/nats.ts";
import { eventually } from "../../testing/eventually.ts";

const DEVICE = "pi-1";
const consumer = deviceConsumer(DEVICE);

function connection(url: string, name: string): Promise<NatsConnection> {
  return connectNats({ servers: [url], credentials: noCredentials(), name, logger: silentLogger });
}

/** Follows the device's consumer, collecting events as strings (`restart <read>` included). */
function follow(nc: NatsConnection) {
  const controller = new AbortController();
  const events: string[] = [];
  const { logger, lines } = captureLogger("info");
  const done = (async () => {
    for await (
      const e of followDeviceConsumer({
        nc,
        consumer,
        logger,
        signal: controller.signal,
        onRestart: (r) => events.push(`restart ${r.read}`),
      })
    ) events.push(show(e));
  })();
  return {
    events,
    lines,
    /** Events after the last `restart`, or all of them. */
    lastRead: () => events.slice(events.findLastIndex((e) => e.startsWith("restart")) + 1),
    async stop() {
      controller.abort();
      await done;
    },
  };
}

async function setup() {
  const ns = await startNatsServer();
  const nc = await connection(ns.url, "device-feed-test");
  const kv: KV = await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 3 });
  return {
    ns,
    nc,
    kv,
    async [Symbol.asyncDispose]() {
      await nc.close();
      await ns[Symbol.asyncDispose]();
    },
  };
}

Deno.test("followDeviceConsumer() reads the device's keys only, then ready, then live puts and deletes", async () => {
  await using s = await setup();
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  await s.kv.put(`${DEVICE}.default.gone`, "g1");
  await s.kv.delete(`${DEVICE}.default.gone`);
  await s.kv.put("pi-2.default.web", "other device");
  await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
  const f = follow(s.nc);
  try {
    await eventually("the first read", () => f.events.includes("ready 1"));
    assert.deepEqual(f.events, [
      "put pi-1.default.web=w1",
      "DEL pi-1.default.gone",
      "ready 1",
    ]);
    await s.kv.put(`${DEVICE}.default.api`, "a1");
    await s.kv.delete(`${DEVICE}.default.web`);
    await s.kv.purge(`${DEVICE}.default.api`);
    await eventually("live changes", () => f.events.length === 6);
    assert.deepEqual(f.events.slice(3), [
      "put pi-1.default.api=a1",
      "DEL pi-1.default.web",
      "PURGE pi-1.default.api",
    ]);
  } finally {
    await f.stop();
  }
});

Deno.test("followDeviceConsumer() ignores what another consumer delivers to the device's subject", async () => {
  await using s = await setup();
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
  const f = follow(s.nc);
  try {
    await eventually("the first read", () => f.events.includes("ready 1"));
    // Whoever may watch another bucket can aim that watch's consumer at the device.
    const other = await ensureBucket(s.nc, Buckets.deviceInfo, { replicas: 1, history: 1 });
    await other.put(`info.${DEVICE}`, "not a desired state");
    const jsm = await jetstreamManager(s.nc);
    await jsm.consumers.add(`KV_${Buckets.deviceInfo}`, {
      name: "intruder",
      deliver_subject: consumer.deliverSubject,
      ack_policy: AckPolicy.None,
    });
    await eventually("the intrusion seen", () => f.lines.some((l) => l.includes("intruder")));
    await s.kv.put(`${DEVICE}.default.api`, "a1");
    await eventually("the next real change", () => f.events.includes("put pi-1.default.api=a1"));
    assert.deepEqual(f.events, ["put pi-1.default.web=w1", "ready 1", "put pi-1.default.api=a1"]);
  } finally {
    await f.stop();
  }
});

Deno.test("followDeviceConsumer() waits for a consumer that does not exist yet, then reads it", async () => {
  await using s = await setup();
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  const f = follow(s.nc);
  try {
    await eventually(
      "the wait said why",
      () =>
        f.lines.some((l) => l.includes("has not prepared this device's desired-state consumer")),
    );
    await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
    await eventually("the read", () => f.events.includes("ready 1"));
    assert.deepEqual(f.events, ["put pi-1.default.web=w1", "ready 1"]);
  } finally {
    await f.stop();
  }
});

Deno.test("followDeviceConsumer() started again reads everything from a re-created consumer, deletes left out", async () => {
  await using s = await setup();
  await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  await s.kv.put(`${DEVICE}.default.api`, "a1");
  const first = follow(s.nc);
  await eventually("the first read", () => first.events.includes("ready 1"));
  await first.stop();
  // While no agent reads: a change, a removal.
  await s.kv.put(`${DEVICE}.default.web`, "w2");
  await s.kv.delete(`${DEVICE}.default.api`);
  await s.kv.put(`${DEVICE}.default.db`, "d1");
  const jsm = await jetstreamManager(s.nc);
  const before = (await jsm.consumers.info(consumer.stream, consumer.name)).created;

  const second = follow(s.nc);
  try {
    await eventually("a complete read", () => second.events.includes("ready 1"));
    // The consumer had delivered to the first process: it was deleted and re-created.
    assert.notEqual((await jsm.consumers.info(consumer.stream, consumer.name)).created, before);
    assert.deepEqual(second.events.filter((e) => e !== "DEL pi-1.default.api"), [
      "put pi-1.default.web=w2",
      "put pi-1.default.db=d1",
      "ready 1",
    ]);
    await s.kv.put(`${DEVICE}.default.web`, "w3");
    await eventually("a live put", () => second.events.at(-1) === "put pi-1.default.web=w3");
  } finally {
    await second.stop();
  }
});

Deno.test("followDeviceConsumer(): two agents of one device each see every change; the second one's start makes the first read again", async () => {
  await using s = await setup();
  await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  await s.kv.put(`${DEVICE}.agent-conflict`, "c1");
  const nc2 = await connection(s.ns.url, "second-agent");
  const a = follow(s.nc);
  await eventually("a's first read", () => a.events.includes("ready 1"));
  const b = follow(nc2);
  try {
    await eventually("b's read", () => b.events.includes("ready 1"));
    await eventually("a read again", () => a.events.includes("ready 2 restarted")).catch((e) => {
      console.log(a.events, a.lines, b.events, b.lines);
      throw e;
    });
    const expected = ["put pi-1.agent-conflict=c1", "put pi-1.default.web=w1"];
    assert.deepEqual(b.events.filter((e) => e.startsWith("put")).sort(), expected);
    assert.deepEqual(a.lastRead().filter((e) => e.startsWith("put")).sort(), expected);
    await s.kv.put(`${DEVICE}.agent-conflict`, "c2");
    for (const f of [a, b]) {
      await eventually("the change", () => f.events.at(-1) === "put pi-1.agent-conflict=c2");
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await nc2.close();
  }
});

Deno.test("followDeviceConsumer() across a broker restart that loses the consumer: everything read again, nothing lost, nothing twice", async () => {
  await using s = await setup();
  await using _consumers = await keepDeviceConsumers(s.nc, [DEVICE]);
  await s.kv.put(`${DEVICE}.default.web`, "w1");
  const agentNc = await connection(s.ns.url, "agent");
  const f = follow(agentNc);
  try {
    await eventually("the first read", () => f.events.includes("ready 1"));
    // The consumer lives in the broker's memory: the operator re-creates it when it reconnects.
    await s.ns.restart();
    await eventually("the test connection is back", async () => {
      await s.kv.put(`${DEVICE}.default.api`, "a1");
      return true;
    });
    await eventually("a complete read again", () => f.events.includes("ready 2 restarted"));
    await eventually(
      "the put after the restart",
      () => f.events.includes("put pi-1.default.api=a1"),
    );
    assert.deepEqual(f.lastRead().filter((e) => e.startsWith("put")).sort(), [
      "put pi-1.default.api=a1",
      "put pi-1.default.web=w1",
    ]);
  } finally {
    await f.stop();
    await agentNc.close();
  }
});
