import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { silentLogger } from "../logger.ts";
import { ensureBucket } from "./buckets.ts";
import { WatchError } from "./kv_watch.ts";
import { readBucket, readBucketEntries } from "./snapshot.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";

const decoder = new TextDecoder();
const settings = { replicas: 1, history: 3 };

Deno.test("readBucket() returns the current values, without deleted keys, filtered by key", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "things", settings);
    await kv.put("a.1", "one");
    await kv.put("a.2", "two");
    await kv.put("a.2", "two again");
    await kv.put("b.1", "other");
    await kv.delete("a.1");
    const all = await readBucket(nc, "things", silentLogger);
    assert.deepEqual(
      [...all].map(([k, v]) => `${k}=${decoder.decode(v)}`).sort(),
      ["a.2=two again", "b.1=other"],
    );
    const some = await readBucket(nc, "things", silentLogger, { keyFilter: "b.>" });
    assert.deepEqual([...some.keys()], ["b.1"]);
  } finally {
    await nc.close();
  }
});

Deno.test("readBucket() gives up with a WatchError, not a partial result, when its signal aborts", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    // The bucket does not exist, so the read keeps waiting for it until the signal ends it.
    const stop = new AbortController();
    const read = readBucket(nc, "missing", silentLogger, { signal: stop.signal });
    setTimeout(() => stop.abort(new Error("enough")), 300);
    const error = await read.then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof WatchError, String(error));
    assert.match(error.message, /Gave up reading the "missing" bucket/);
    assert.equal((error.cause as Error).message, "enough");
  } finally {
    await nc.close();
  }
});

Deno.test("readBucketEntries() gives each value the broker's timestamp of when it was stored", async () => {
  await using ns = await startNatsServer();
  const nc = await connect({ servers: ns.url });
  try {
    const kv = await ensureBucket(nc, "stamped", settings);
    // nats-server runs on this machine: its clock is ours, to the millisecond.
    const before = Date.now();
    await kv.put("k", "v");
    const after = Date.now();
    const entries = await readBucketEntries(nc, "stamped", silentLogger);
    const entry = entries.get("k");
    assert.equal(decoder.decode(entry?.value), "v");
    assert.ok(entry && entry.created >= before - 1 && entry.created <= after + 1);
  } finally {
    await nc.close();
  }
});
