/**
 * Attacks on the report buckets through a device's own keys, on a real nats-server with
 * device users issued by the auth callout: a rollup header on its own key must not wipe
 * the other devices' reports (issue 12, item 1).
 */
import assert from "node:assert/strict";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Buckets, keys, REPORT_BUCKETS } from "../../core/mod.ts";
import { createLogger, silentLogger } from "../../adapters/logger.ts";
import { systemClock } from "../../adapters/clock.ts";
import { connectNats, ensureBucket, noCredentials, openBucket } from "../../adapters/nats/mod.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { BucketAuditor } from "../../operator/bucket_auditor.ts";
import { NatsBucketKeeper } from "../../operator/nats_bucket_keeper.ts";
import { zeroStats } from "../../operator/operator_stats.ts";

const REF = { namespace: "default", name: "web" };
/** Each report bucket with the key of `deviceId` in it. */
const reportKeys = (deviceId: string) => ({
  [Buckets.deviceInfo]: keys.deviceInfo(deviceId),
  [Buckets.deviceState]: keys.deviceState(deviceId, REF),
  [Buckets.deviceHeartbeat]: keys.heartbeat(deviceId),
});

async function putReports(nc: NatsConnection, deviceId: string): Promise<void> {
  for (const [bucket, key] of Object.entries(reportKeys(deviceId))) {
    await (await openBucket(nc, bucket)).put(key, `${deviceId} report`);
  }
}

/** The value of every report key of `deviceId`, by bucket. */
async function readReports(nc: NatsConnection, deviceId: string): Promise<string[]> {
  const out: string[] = [];
  for (const [bucket, key] of Object.entries(reportKeys(deviceId))) {
    const entry = await (await openBucket(nc, bucket)).get(key);
    out.push(`${bucket} ${entry?.operation} ${entry?.string()}`);
  }
  return out;
}

async function refusesRollups(nc: NatsConnection, bucket: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  return !(await jsm.streams.info(`KV_${bucket}`)).config.allow_rollup_hdrs;
}

Deno.test("A device's rollup or purge on its own report keys is refused, and the other devices' reports stay", async () => {
  await using t = await startCalloutFixture(false);
  const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
  const keeper = new NatsBucketKeeper({
    nc: operator,
    log: silentLogger,
    replicas: 1,
    clock: systemClock,
  });
  assert.equal(await keeper.ensureAll(new AbortController().signal), true);
  // Each device writes its own reports: the operator only reads them.
  const devB = await t.connectAs(await t.mint("dev-b", ["fleet-device"]), "dev-b");
  await putReports(devB, "dev-b");
  await devB.close();
  const dev = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
  try {
    await putReports(dev, "dev-a");
    const js = jetstream(dev);
    for (const [bucket, key] of Object.entries(reportKeys("dev-a"))) {
      for (const rollup of ["all", "sub"]) {
        const h = headers();
        h.set("Nats-Rollup", rollup);
        await assert.rejects(
          js.publish(`$KV.${bucket}.${key}`, "wipe", { headers: h }),
          /rollup not permitted/,
          `Nats-Rollup: ${rollup} on ${bucket}`,
        );
      }
      await assert.rejects((await openBucket(dev, bucket)).purge(key), /rollup not permitted/);
    }
    const untouched = [
      "device-info PUT dev-b report",
      "device-state PUT dev-b report",
      "device-heartbeat PUT dev-b report",
    ];
    assert.deepEqual(await readReports(operator, "dev-b"), untouched);
    assert.deepEqual(
      await readReports(operator, "dev-a"),
      untouched.map((l) => l.replace("dev-b", "dev-a")),
    );

    // What an agent does still works: puts, and deleting its state key with a marker.
    const state = await openBucket(dev, Buckets.deviceState);
    await state.put(keys.deviceState("dev-a", REF), "again");
    await state.delete(keys.deviceState("dev-a", REF));
    const seen = await (await openBucket(operator, Buckets.deviceState))
      .get(keys.deviceState("dev-a", REF));
    assert.equal(seen?.operation, "DEL");
  } finally {
    await dev.close();
    await operator.close();
  }
});

Deno.test("The bucket audit makes report buckets made the old way refuse rollups, keeping their entries", async () => {
  await using ns = await startNatsServer();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "report-buckets-test",
    logger: silentLogger,
  });
  try {
    // What an older operator made: @nats-io/kv's defaults, rollups allowed.
    for (const bucket of REPORT_BUCKETS) {
      await ensureBucket(nc, bucket, { replicas: 1, history: 3 });
      assert.equal(await refusesRollups(nc, bucket), false);
    }
    await putReports(nc, "dev-a");
    await putReports(nc, "dev-b");
    const before = [...await readReports(nc, "dev-a"), ...await readReports(nc, "dev-b")];

    const lines: string[] = [];
    const keeper = new NatsBucketKeeper({ nc, log: silentLogger, replicas: 1, clock: systemClock });
    const auditor = new BucketAuditor({
      keeper,
      clock: systemClock,
      log: createLogger({ level: "info", timestamps: false, write: (l) => lines.push(l) }),
      stats: zeroStats(),
      intervalMs: 10_000,
      recreated: () => {},
    });
    await auditor.audit();
    for (const bucket of REPORT_BUCKETS) assert.equal(await refusesRollups(nc, bucket), true);
    assert.equal(lines.filter((l) => l.includes("allowed rollups")).length, 3, lines.join("\n"));
    assert.deepEqual(
      [...await readReports(nc, "dev-a"), ...await readReports(nc, "dev-b")],
      before,
    );
    // The operator's own buckets are left as they are.
    assert.equal(await refusesRollups(nc, Buckets.desiredState), false);

    // A report bucket lost and re-created refuses them too.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${Buckets.deviceState}`);
    await auditor.audit();
    assert.equal(await refusesRollups(nc, Buckets.deviceState), true);
  } finally {
    await nc.close();
  }
});
