import assert from "node:assert/strict";
import { AUDIT_STREAM, type BucketName, Buckets, ROLLOUT_ACTIONS_STREAM } from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { BucketAuditor } from "./bucket_auditor.ts";
import type { BucketKeeper } from "./bucket_keeper.ts";
import { zeroStats } from "./operator_stats.ts";

/** Buckets in a Set; `lost()` takes one away, `down` makes every call fail. */
class MemoryKeeper implements BucketKeeper {
  readonly present = new Set<BucketName>(Object.values(Buckets));
  down = false;
  failCreate = false;

  ensureAll(): Promise<boolean> {
    return Promise.resolve(true);
  }

  missing(): Promise<BucketName[]> {
    if (this.down) return Promise.reject(new Error("no connection"));
    return Promise.resolve(Object.values(Buckets).filter((b) => !this.present.has(b)));
  }

  recreate(bucket: BucketName): Promise<void> {
    if (this.failCreate) return Promise.reject(new Error("insufficient resources"));
    this.present.add(bucket);
    return Promise.resolve();
  }

  /** Report buckets that still allow rollups. */
  readonly rollups = new Set<BucketName>();

  refuseRollups(): Promise<BucketName[]> {
    if (this.down) return Promise.reject(new Error("no connection"));
    const changed = [...this.rollups];
    this.rollups.clear();
    return Promise.resolve(changed);
  }

  /** Buckets without size limits, and buckets too full for theirs. */
  readonly unlimited = new Set<BucketName>();
  readonly overfull = new Set<BucketName>();

  applyLimits(): Promise<{ changed: BucketName[]; overfull: BucketName[] }> {
    const changed = [...this.unlimited].filter((b) => !this.overfull.has(b));
    for (const bucket of changed) this.unlimited.delete(bucket);
    return Promise.resolve({ changed, overfull: [...this.overfull] });
  }

  /** The streams that exist. */
  readonly streams = new Set([AUDIT_STREAM, ROLLOUT_ACTIONS_STREAM]);

  ensureStreams(): Promise<string[]> {
    const created = [AUDIT_STREAM, ROLLOUT_ACTIONS_STREAM].filter((s) => !this.streams.has(s));
    for (const stream of created) this.streams.add(stream);
    return Promise.resolve(created);
  }
}

Deno.test("BucketAuditor re-creates a vanished bucket on its next audit, and says so", async () => {
  const clock = new FakeClock();
  const keeper = new MemoryKeeper();
  const stats = zeroStats();
  const lines: string[] = [];
  const recreated: string[] = [];
  const auditor = new BucketAuditor({
    keeper,
    clock,
    log: createLogger({ level: "debug", timestamps: false, write: (l) => lines.push(l) }),
    stats,
    intervalMs: 10_000,
    recreated: (bucket) => recreated.push(bucket),
  });
  const controller = new AbortController();
  const running = auditor.run(controller.signal);

  keeper.present.delete(Buckets.deploymentStatus);
  await clock.advance(9_999);
  assert.deepEqual(recreated, []);
  await clock.advance(1);
  assert.deepEqual(recreated, [Buckets.deploymentStatus]);
  assert.equal(stats.bucketsRecreated, 1);
  assert.ok(lines.some((l) => l.includes(`"fleet-deployment-status" bucket is missing`)));

  // Neither a broker out of reach nor a failed creation stops the audits; both are logged.
  keeper.down = true;
  await clock.advance(10_000);
  assert.ok(lines.some((l) => l.includes("Could not check that the buckets exist")));
  keeper.down = false;
  keeper.failCreate = true;
  keeper.present.delete(Buckets.deviceInfo);
  await clock.advance(10_000);
  assert.ok(lines.some((l) => l.includes(`Could not recreate the "device-info" bucket`)));
  keeper.failCreate = false;
  await clock.advance(10_000);
  assert.deepEqual(recreated, [Buckets.deploymentStatus, Buckets.deviceInfo]);
  assert.equal(stats.bucketsRecreated, 2);
  controller.abort();
  await running;
});

Deno.test("BucketAuditor re-creates the vanished streams (audit, rollout actions) on its next audit, and says so", async () => {
  const clock = new FakeClock();
  const keeper = new MemoryKeeper();
  const lines: string[] = [];
  const auditor = new BucketAuditor({
    keeper,
    clock,
    log: createLogger({ level: "debug", timestamps: false, write: (l) => lines.push(l) }),
    stats: zeroStats(),
    intervalMs: 10_000,
    recreated: () => {},
  });
  const controller = new AbortController();
  const running = auditor.run(controller.signal);
  await clock.advance(10_000);
  assert.deepEqual(lines.filter((l) => l.includes("stream")), []);
  keeper.streams.clear();
  await clock.advance(10_000);
  assert.equal(keeper.streams.size, 2);
  assert.ok(lines.some((l) => l.includes(`The "fleet-audit" stream was missing from NATS`)));
  assert.ok(
    lines.some((l) => l.includes(`The "fleet-rollout-actions" stream was missing from NATS`)),
  );
  controller.abort();
  await running;
});

Deno.test("BucketAuditor makes a report bucket that allows rollups refuse them, and says so", async () => {
  const clock = new FakeClock();
  const keeper = new MemoryKeeper();
  const lines: string[] = [];
  const auditor = new BucketAuditor({
    keeper,
    clock,
    log: createLogger({ level: "info", timestamps: false, write: (l) => lines.push(l) }),
    stats: zeroStats(),
    intervalMs: 10_000,
    recreated: () => {},
  });
  keeper.rollups.add(Buckets.deviceState);
  await auditor.audit();
  assert.deepEqual([...keeper.rollups], []);
  assert.ok(
    lines.some((l) => l.includes(`"device-state" bucket allowed rollups`)),
    lines.join("\n"),
  );
  lines.length = 0;
  await auditor.audit();
  assert.deepEqual(lines, [], "nothing to say once they refuse them");
});

Deno.test("BucketAuditor gives a bucket without size limits its limits, and says so", async () => {
  const keeper = new MemoryKeeper();
  const lines: string[] = [];
  const auditor = new BucketAuditor({
    keeper,
    clock: new FakeClock(),
    log: createLogger({ level: "info", timestamps: false, write: (l) => lines.push(l) }),
    stats: zeroStats(),
    intervalMs: 10_000,
    recreated: () => {},
  });
  keeper.unlimited.add(Buckets.deviceState);
  keeper.unlimited.add(Buckets.deviceInfo);
  keeper.overfull.add(Buckets.deviceInfo);
  await auditor.audit();
  assert.deepEqual([...keeper.unlimited], [Buckets.deviceInfo]);
  assert.ok(
    lines.some((l) => l.includes(`"device-state" bucket had no size limits`)),
    lines.join("\n"),
  );
  assert.ok(lines.some((l) => l.includes(`"device-info" bucket holds more than its size limit`)));
  lines.length = 0;
  keeper.overfull.clear();
  await auditor.audit();
  assert.deepEqual([...keeper.unlimited], []);
});
