import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  AUDIT_STREAM,
  Buckets,
  ROLLOUT_ACTIONS_MAX_AGE_MS,
  ROLLOUT_ACTIONS_STREAM,
} from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { NatsBucketKeeper } from "./nats_bucket_keeper.ts";

Deno.test("NatsBucketKeeper creates every bucket, tells a deleted one apart by its error code, and re-creates it", async () => {
  await using ns = await startNatsServer();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "keeper-test",
    logger: silentLogger,
  });
  try {
    const keeper = new NatsBucketKeeper({ nc, log: silentLogger, replicas: 1, clock: systemClock });
    assert.equal(await keeper.ensureAll(new AbortController().signal), true);
    assert.deepEqual(await keeper.missing(), []);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${Buckets.deviceState}`);
    assert.deepEqual(await keeper.missing(), [Buckets.deviceState]);
    await keeper.recreate(Buckets.deviceState);
    assert.deepEqual(await keeper.missing(), []);
    assert.equal(
      (await jsm.streams.info(`KV_${Buckets.deviceState}`)).config.max_msgs_per_subject,
      3,
    );

    // The streams: made by ensureAll, re-made once lost, their settings kept.
    assert.deepEqual(await keeper.ensureStreams(), []);
    await jsm.streams.delete(AUDIT_STREAM);
    await jsm.streams.delete(ROLLOUT_ACTIONS_STREAM);
    assert.deepEqual(await keeper.ensureStreams(), [AUDIT_STREAM, ROLLOUT_ACTIONS_STREAM]);
    const audit = (await jsm.streams.info(AUDIT_STREAM)).config;
    assert.deepEqual(audit.subjects, [`${AUDIT_STREAM}.>`]);
    assert.equal(audit.deny_purge, true);
    assert.equal(audit.allow_direct, true);
    const actions = (await jsm.streams.info(ROLLOUT_ACTIONS_STREAM)).config;
    assert.deepEqual(actions.subjects, [`${ROLLOUT_ACTIONS_STREAM}.>`]);
    assert.equal(actions.storage, "file");
    assert.equal(actions.retention, "limits");
    assert.equal(actions.max_age, ROLLOUT_ACTIONS_MAX_AGE_MS * 1e6);
    assert.equal(actions.num_replicas, 1);
  } finally {
    await nc.close();
  }
});
