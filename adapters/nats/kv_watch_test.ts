import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { silentLogger } from "../logger.ts";
import { ensureBucket } from "./buckets.ts";
import { connectNats } from "./connection.ts";
import {
  watchBucket,
  type WatchBucketOptions,
  WatchError,
  type WatchEvent,
  type WatchRestart,
} from "./kv_watch.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { captureLogger, nextStatus, show } from "../../testing/nats.ts";
import { eventually } from "../../testing/eventually.ts";

const settings = { replicas: 1, history: 3 };

function fastReconnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

/** Starts a watch collecting its events as strings; `stop()` aborts and waits for the end. */
function watch(
  nc: NatsConnection,
  bucket: string,
  extra: Partial<WatchBucketOptions> = {},
): {
  events: string[];
  restarts: WatchRestart[];
  /** Resolves when the iteration ends by itself, with the error it threw if any. */
  ended: Promise<unknown>;
  stop(): Promise<unknown>;
} {
  const controller = new AbortController();
  const restarts: WatchRestart[] = [];
  const events: string[] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (
        const event of watchBucket({
          nc,
          bucket,
          logger: silentLogger,
          signal: controller.signal,
          onRestart: (r) => {
            restarts.push(r);
            events.push(`restart ${r.read} ${r.reason}`);
          },
          ...extra,
        })
      ) {
        events.push(show(event));
      }
    } catch (err) {
      error = err;
    }
  })();
  return {
    events,
    restarts,
    ended: done.then(() => error),
    async stop() {
      controller.abort();
      await done;
      return error;
    },
  };
}

async function putAll(kv: KV, entries: Record<string, string>): Promise<void> {
  for (const [k, v] of Object.entries(entries)) await kv.put(k, v);
}

Deno.test("watchBucket() yields the current values, then ready, then live puts and deletes", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "desired-state", settings);
    await putAll(kv, { "dev1.a": "1", "dev1.b": "2" });
    await kv.put("dev1.a", "1b"); // only the last value of a key is part of the read
    const w = watch(nc, "desired-state");
    await eventually("the first ready", () => w.events.includes("ready 1"));
    await kv.put("dev1.c", "3");
    await kv.delete("dev1.b");
    await kv.purge("dev1.c");
    await eventually("the purge", () => w.events.includes("PURGE dev1.c"));
    assert.equal(await w.stop(), undefined);
    assert.deepEqual(w.events, [
      "put dev1.b=2",
      "put dev1.a=1b",
      "ready 1",
      "put dev1.c=3",
      "DEL dev1.b",
      "PURGE dev1.c",
    ]);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() reports revisions and binary values unchanged", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "bin", settings);
    const revision = await kv.put("k", new Uint8Array([0, 255, 7]));
    const controller = new AbortController();
    for await (
      const event of watchBucket({
        nc,
        bucket: "bin",
        logger: silentLogger,
        signal: controller.signal,
      })
    ) {
      assert.equal(event.type, "put");
      const { created: _, ...rest } = event;
      assert.deepEqual(rest, {
        type: "put",
        key: "k",
        value: new Uint8Array([0, 255, 7]),
        revision,
      });
      break; // leaving the loop stops the watch
    }
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() gives each entry the broker's timestamp of when it was stored", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "stamps", settings);
    // nats-server runs on this machine: its clock is ours, to the millisecond.
    const before = Date.now();
    await kv.put("old", "1");
    const written = Date.now();
    // The read starts later; an entry read then still carries the time it was stored.
    while (Date.now() <= written + 5) await new Promise((r) => setTimeout(r, 5));
    const events: WatchEvent[] = [];
    const controller = new AbortController();
    const reading = (async () => {
      for await (
        const event of watchBucket({
          nc,
          bucket: "stamps",
          logger: silentLogger,
          signal: controller.signal,
        })
      ) {
        events.push(event);
      }
    })();
    await eventually("ready", () => events.some((e) => e.type === "ready"));
    const liveFrom = Date.now();
    await kv.delete("old");
    const liveTo = Date.now();
    await eventually("the delete", () => events.some((e) => e.type === "delete"));
    controller.abort();
    await reading;
    const [put, , del] = events;
    assert.ok(put?.type === "put" && del?.type === "delete", JSON.stringify(events));
    assert.ok(put.created >= before - 1 && put.created <= written + 1, `${put.created}`);
    assert.ok(del.created >= liveFrom - 1 && del.created <= liveTo + 1, `${del.created}`);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() spaces its attempts to read a missing bucket on the injected clock", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  const clock = new FakeClock();
  // Every attempt creates a consumer: count the requests on a second connection.
  const spy = await connect({ servers: ns.url });
  let attempts = 0;
  spy.subscribe("$JS.API.CONSUMER.CREATE.KV_later.>", {
    callback: () => void attempts++,
  });
  await spy.flush();
  try {
    const w = watch(nc, "later", { clock });
    await eventually("the first attempt", () => attempts === 1);
    // No time passes on the watch's clock: however long we wait, it does not try again.
    await clock.advance(999);
    await spy.flush();
    assert.equal(attempts, 1);
    await clock.advance(1);
    await eventually("the second attempt, 1 s later", () => attempts === 2);
    await clock.advance(1_999);
    await spy.flush();
    assert.equal(attempts, 2);
    const kv = await ensureBucket(nc, "later", settings);
    await kv.put("x", "1");
    await clock.advance(1);
    await eventually("ready", () => w.events.includes("ready 1"));
    await w.stop();
    assert.deepEqual(w.events, ["put x=1", "ready 1"]);
    assert.equal(attempts, 3);
  } finally {
    await spy.close();
    await nc.close();
  }
});

Deno.test("watchBucket() says ready at once for an empty bucket", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    await ensureBucket(nc, "empty", settings);
    const w = watch(nc, "empty");
    await eventually("ready", () => w.events.length > 0);
    await w.stop();
    assert.deepEqual(w.events, ["ready 1"]);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() waits for a bucket that does not exist yet, and logs it once", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  const { logger, lines } = captureLogger();
  try {
    const w = watch(nc, "later", { logger });
    await eventually(
      "the missing-bucket log line",
      () => lines.some((l) => l.includes("does not exist")),
    );
    const kv = await ensureBucket(nc, "later", settings);
    await kv.put("x", "1");
    await eventually("ready", () => w.events.includes("ready 1"));
    await w.stop();
    assert.deepEqual(w.events, ["put x=1", "ready 1"]);
    const missing = lines.filter((l) => l.includes(`The "later" bucket does not exist on NATS`));
    assert.ok(missing.length >= 1 && missing.length <= 2, lines.join("\n"));
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() with a key filter sees only those keys", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "desired-state", settings);
    await putAll(kv, { "dev1.ns.a": "1", "dev2.ns.a": "2", "dev10.ns.a": "10" });
    const w = watch(nc, "desired-state", { keyFilter: "dev1.>" });
    await eventually("ready", () => w.events.includes("ready 1"));
    await putAll(kv, { "dev2.ns.b": "2", "dev1.ns.b": "1" });
    await kv.delete("dev10.ns.a");
    await kv.delete("dev1.ns.a");
    await eventually("the delete", () => w.events.includes("DEL dev1.ns.a"));
    await w.stop();
    assert.deepEqual(w.events, ["put dev1.ns.a=1", "ready 1", "put dev1.ns.b=1", "DEL dev1.ns.a"]);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() rejects a bad key filter or bucket name at once", () => {
  const nc = {} as NatsConnection; // never used: validation happens first
  const signal = new AbortController().signal;
  for (const keyFilter of ["", "a..b", "a.>.b", "a b", "dev1."]) {
    assert.throws(
      () => watchBucket({ nc, bucket: "b", keyFilter, logger: silentLogger, signal }),
      (err: unknown) => err instanceof WatchError && /Invalid key filter/.test(err.message),
      keyFilter,
    );
  }
  assert.throws(
    () => watchBucket({ nc, bucket: "b", logger: silentLogger, signal, idleHeartbeatMs: 0 }),
    (err: unknown) =>
      err instanceof WatchError && /idleHeartbeatMs must be at least 100/.test(err.message),
  );
  assert.throws(
    () => watchBucket({ nc, bucket: "a.b", logger: silentLogger, signal }),
    (err: unknown) => err instanceof WatchError && /Invalid bucket name "a\.b"/.test(err.message),
  );
});

Deno.test("watchBucket() carries on across a server restart with nothing lost or repeated", async () => {
  await using ns = await startNatsServer();
  const nc = await fastReconnect(ns.url);
  try {
    const kv = await ensureBucket(nc, "desired-state", settings);
    await putAll(kv, { a: "1", b: "2" });
    const w = watch(nc, "desired-state", { idleHeartbeatMs: 500 });
    await eventually("ready", () => w.events.includes("ready 1"));
    await kv.put("c", "3");
    await eventually("c", () => w.events.includes("put c=3"));

    const reconnected = nextStatus(nc, "reconnect");
    await ns.restart();
    // A put issued while disconnected is dropped by the client (it times out), so wait.
    await reconnected;
    await kv.put("d", "4");
    await kv.delete("a");
    await eventually("the delete after the restart", () => w.events.includes("DEL a"));
    // Long enough for missed heartbeats (2-3 intervals) to have caused a restart.
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    await w.stop();
    assert.deepEqual(w.events, ["put a=1", "put b=2", "ready 1", "put c=3", "put d=4", "DEL a"]);
    assert.deepEqual(w.restarts, []);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() carries on after the server crashed (SIGKILL) and came back", async () => {
  await using ns = await startNatsServer();
  const nc = await fastReconnect(ns.url);
  try {
    const kv = await ensureBucket(nc, "desired-state", settings);
    await kv.put("a", "1");
    const w = watch(nc, "desired-state", { idleHeartbeatMs: 500 });
    await eventually("ready", () => w.events.includes("ready 1"));
    const reconnected = nextStatus(nc, "reconnect");
    await ns.kill();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await ns.restart();
    await reconnected;
    await kv.put("b", "2");
    await eventually("b", () => w.events.includes("put b=2"));
    await w.stop();
    // The consumer survives a crash of a single server, so no re-read is needed.
    assert.deepEqual(w.events, ["put a=1", "ready 1", "put b=2"]);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() re-reads a bucket that was deleted and created again", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  const { logger, lines } = captureLogger();
  try {
    let kv = await ensureBucket(nc, "desired-state", settings);
    await putAll(kv, { old1: "1", old2: "2" });
    const w = watch(nc, "desired-state", { idleHeartbeatMs: 300, logger });
    await eventually("ready", () => w.events.includes("ready 1"));

    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete("KV_desired-state");
    await eventually(
      "the log line about the lost watch",
      () => lines.some((l) => l.includes(`The watch on the "desired-state" bucket went silent`)),
    );
    kv = await ensureBucket(nc, "desired-state", settings);
    await kv.put("new", "3");
    await eventually("the second ready", () => w.events.includes("ready 2 restarted"), 15_000);
    await kv.put("live", "4");
    await eventually("a live update after the re-read", () => w.events.includes("put live=4"));
    await w.stop();
    assert.deepEqual(w.events, [
      "put old1=1",
      "put old2=2",
      "ready 1",
      "restart 2 heartbeats-missed",
      "put new=3",
      "ready 2 restarted",
      "put live=4",
    ]);
    assert.deepEqual(w.restarts, [{ read: 2, reason: "heartbeats-missed" }]);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() started while NATS is down waits for it, then reads", async () => {
  await using ns = await startNatsServer();
  const nc = await fastReconnect(ns.url);
  const { logger, lines } = captureLogger();
  try {
    const kv = await ensureBucket(nc, "desired-state", settings);
    await kv.put("a", "1");
    await ns.stop();
    const w = watch(nc, "desired-state", { logger });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.deepEqual(w.events, []);
    await ns.restart();
    await eventually("ready", () => w.events.includes("ready 1"), 15_000);
    await w.stop();
    assert.deepEqual(w.events, ["put a=1", "ready 1"]);
    assert.equal(lines.filter((l) => l.includes("WARN")).length <= 2, true, lines.join("\n"));
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() ends with a WatchError when the connection is closed under it", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  await ensureBucket(nc, "b", settings);
  const w = watch(nc, "b");
  await eventually("ready", () => w.events.includes("ready 1"));
  await nc.close();
  const error = await w.ended;
  assert.ok(error instanceof WatchError, String(error));
  assert.match(error.message, /the NATS connection was closed/);
});

Deno.test("watchBucket() ends promptly on abort even while NATS is unreachable", async () => {
  await using ns = await startNatsServer();
  const nc = await fastReconnect(ns.url);
  try {
    await ensureBucket(nc, "b", settings);
    await ns.stop();
    const w = watch(nc, "b");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    assert.equal(await w.stop(), undefined);
    assert.ok(Date.now() - started < 200, `took ${Date.now() - started} ms`);
    assert.deepEqual(w.events, []);
  } finally {
    await nc.close();
  }
});

Deno.test("watchBucket() works within a device's narrow permissions (DESIGN.md §5)", async () => {
  const device = `{
    user: "dev1", password: "pw",
    permissions: {
      publish: { allow: [
        "$JS.API.CONSUMER.CREATE.KV_desired-state.*.$KV.desired-state.dev1.>",
        "$JS.FC.KV_desired-state.>"
      ] },
      subscribe: { allow: ["_INBOX_dev1.>"] }
    }
  }`;
  await using ns = await startNatsServer({
    extraConfig: `authorization { users = [ { user: "admin", password: "pw" }, ${device} ] }`,
  });
  const admin = await connect({ servers: ns.url, user: "admin", pass: "pw" });
  const deviceCredentials = {
    kind: "test-device",
    connectionOptions: () =>
      Promise.resolve({ user: "dev1", pass: "pw", inboxPrefix: "_INBOX_dev1" }),
    describe: () => `device "dev1"`,
  };
  const { logger, lines } = captureLogger();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: deviceCredentials,
    name: "agent-dev1",
    logger,
  });
  try {
    const kv = await ensureBucket(admin, "desired-state", settings);
    // Enough data to make the server ask for flow control.
    const big = "x".repeat(60_000);
    for (let i = 0; i < 40; i++) await kv.put(`dev1.default.app${i}`, big);
    await kv.put("dev2.default.app", "secret");

    const own = watch(nc, "desired-state", { keyFilter: "dev1.>", logger });
    await eventually("ready", () => own.events.includes("ready 1"));
    await kv.put("dev1.default.live", "1");
    await eventually("a live update", () => own.events.includes("put dev1.default.live=1"));
    assert.equal(own.events.filter((e) => e.startsWith("put dev1.default.app")).length, 40);

    const other = watch(nc, "desired-state", { keyFilter: "dev2.>", logger });
    await eventually(
      "the refusal",
      () => lines.some((l) => l.includes(`NATS does not allow this process to watch`)),
    );
    await other.stop();
    await own.stop();
    assert.deepEqual(other.events, []);
    assert.ok(!own.events.some((e) => e.includes("dev2")));
    assert.ok(
      !lines.some((l) => l.includes("refused permission to") && !l.includes("dev2")),
      lines.join("\n"),
    );
  } finally {
    await nc.close();
    await admin.close();
  }
});
