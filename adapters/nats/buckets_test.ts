import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { bucketLimits } from "../../core/limits.ts";
import {
  applyBucketLimits,
  Buckets,
  ensureBucket,
  ensureBucketRetrying,
  openBucket,
} from "./buckets.ts";
import { silentLogger } from "../logger.ts";
import { captureLogger } from "../../testing/nats.ts";
import { eventually } from "../../testing/eventually.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { startNatsCluster } from "../../testing/nats_cluster.ts";

Deno.test("ensureBucket() creates a bucket once and then opens it, whatever the settings", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const first = await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 3 });
    await first.put("dev1.default.web", "v1");
    const again = await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 3 });
    assert.equal((await again.get("dev1.default.web"))?.string(), "v1");

    // Different settings: the existing bucket is used as it is, not changed, no error.
    const other = await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 10 });
    assert.equal((await other.get("dev1.default.web"))?.string(), "v1");
    assert.equal((await other.status()).history, 3);
  } finally {
    await nc.close();
  }
});

Deno.test("ensureBucket() called concurrently with different settings never fails", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kvs = await Promise.all(
      [1, 2, 3, 4, 5].map((history) => ensureBucket(nc, "race", { replicas: 1, history })),
    );
    await kvs[0]!.put("k", "v");
    for (const kv of kvs) assert.equal((await kv.get("k"))?.string(), "v");
  } finally {
    await nc.close();
  }
});

Deno.test("openBucket() binds to an existing bucket without creating one", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const created = await ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 });
    await created.put("info.dev1", "{}");
    const bound = await openBucket(nc, Buckets.deviceInfo);
    assert.equal((await bound.get("info.dev1"))?.string(), "{}");

    // Binding makes no API call, so a missing bucket shows up only on use.
    const missing = await openBucket(nc, "missing");
    await assert.rejects(missing.put("k", "v"));
  } finally {
    await nc.close();
  }
});

Deno.test("ensureBucketRetrying() waits while NATS is down, says why, and creates the bucket once it is back", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    await ns.stop();
    const { logger, lines } = captureLogger("info");
    const pending = ensureBucketRetrying(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }, {
      signal: new AbortController().signal,
      logger,
    });
    await eventually("a retry warning", () => lines.some((l) => l.includes("retrying")));
    await ns.restart();
    const kv = await pending;
    assert.ok(kv, "a bucket once NATS is back");
    await kv.put("info.dev1", "{}");
    assert.match(lines[0]!, /Cannot create or open the "device-info" bucket on NATS: .*; retrying/);
    assert.match(lines.at(-1)!, /The "device-info" bucket is ready now/);
  } finally {
    await nc.close();
  }
});

Deno.test("ensureBucketRetrying() gives up quietly when its signal aborts", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    await ns.stop();
    const stop = new AbortController();
    const pending = ensureBucketRetrying(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }, {
      signal: stop.signal,
      logger: silentLogger,
    });
    setTimeout(() => stop.abort(), 300);
    assert.equal(await pending, undefined);
  } finally {
    await nc.close();
  }
});

Deno.test("ensureBucket() creates a bucket with its size limits; applyBucketLimits() adds them in place", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const jsm = await jetstreamManager(nc);
    const limits = bucketLimits(Buckets.deviceState);
    const created = await ensureBucket(nc, Buckets.deviceState, { replicas: 1, history: 3 });
    const { config } = await jsm.streams.info(`KV_${Buckets.deviceState}`);
    assert.equal(config.max_bytes, limits.maxBytes);
    assert.equal(config.max_msg_size, limits.maxValueSize);
    await assert.rejects(
      () => created.put("state.dev-a.default.web", new Uint8Array(limits.maxValueSize + 1)),
      /message size exceeds maximum allowed/,
    );

    // A bucket made by an older Fleet, without limits: changed in place, its entries kept.
    const old = await new Kvm(nc).create(Buckets.deviceInfo, { history: 1 });
    await old.put("info.dev-b", "b's info");
    assert.deepEqual(await applyBucketLimits(nc, Buckets.deviceInfo), {
      changed: true,
      overfull: false,
    });
    const after = await jsm.streams.info(`KV_${Buckets.deviceInfo}`);
    assert.equal(after.config.max_bytes, bucketLimits(Buckets.deviceInfo).maxBytes);
    assert.equal(after.config.max_msg_size, bucketLimits(Buckets.deviceInfo).maxValueSize);
    assert.equal((await old.get("info.dev-b"))?.string(), "b's info");
    await assert.rejects(
      () =>
        old.put("info.dev-a", new Uint8Array(bucketLimits(Buckets.deviceInfo).maxValueSize + 1)),
      /message size exceeds maximum allowed/,
    );
    assert.deepEqual(await applyBucketLimits(nc, Buckets.deviceInfo), {
      changed: false,
      overfull: false,
    });
  } finally {
    await nc.close();
  }
});

Deno.test("ensureBucket() with more copies than JetStream has servers says what to check", async () => {
  await using cluster = await startNatsCluster({ size: 2 });
  const nc = await connect({ servers: cluster.urls });
  try {
    await assert.rejects(
      ensureBucket(nc, Buckets.desiredState, { replicas: 3, history: 3 }),
      (err: Error) => {
        assert.match(err.message, /^Cannot create or open the "desired-state" bucket on NATS: /);
        assert.match(err.message, /Its 3 copies need 3 NATS servers in JetStream's cluster/);
        assert.match(err.message, /`nats server report jetstream` lists the members/);
        return true;
      },
    );
    const names = await (await jetstreamManager(nc)).streams.names().next();
    assert.deepEqual(names, []);
  } finally {
    await nc.close();
  }
});
