import assert from "node:assert/strict";
import type { DeploymentRef } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import {
  MemoryDesiredStateStore,
  RecordingSource,
  storedDeployment,
} from "../testing/operator_fakes.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import { zeroStats } from "./operator_stats.ts";
import { TargetingWriter } from "./targeting_writer.ts";

const WEB: DeploymentRef = { namespace: "default", name: "web" };

/** A writer over an in-memory store whose first read is done, with `devices` at site=a. */
function setup(devices: string[]) {
  const clock = new FakeClock();
  const view = new FleetView();
  for (const id of devices) view.setDevice(id, { site: "a" });
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }));
  const store = new MemoryDesiredStateStore(clock);
  const source = new RecordingSource(clock);
  const stats = zeroStats();
  const writer = new TargetingWriter({
    view,
    store,
    source,
    initialRead: new InitialRead([]),
    clock,
    log: silentLogger,
    stats,
    aggregateChanged: () => {},
  });
  return { clock, view, store, source, stats, writer };
}

/** The gaps between successive times. */
function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

Deno.test("TargetingWriter retries a write the store keeps denying at growing intervals, not in a hot loop", async () => {
  const { clock, store, stats, writer } = setup(["d1"]);
  store.deny = true;
  await writer.start();
  await clock.advance(120_000);

  const attempts = store.attempts.get("d1.default.web") ?? [];
  // 100 ms doubling to 30 s (less up to a fifth): 1 + 9 growing retries to reach the cap in
  // about a minute, then one every 24-30 s.
  assert.ok(attempts.length >= 10 && attempts.length <= 14, `${attempts.length} attempts`);
  const spacing = gaps(attempts);
  assert.ok(spacing[0]! >= 80, `first retry after ${spacing[0]} ms`);
  for (let i = 1; i < spacing.length; i++) {
    if (spacing[i - 1]! < 24_000) {
      assert.ok(spacing[i]! > spacing[i - 1]!, `gaps do not grow: ${spacing.join(", ")}`);
    } else {
      assert.ok(spacing[i]! >= 24_000 && spacing[i]! <= 30_010, `gap ${spacing[i]} ms`);
    }
  }
  assert.equal(stats.writeErrors, attempts.length);
  assert.equal(stats.desiredPuts, 0);
  assert.equal(writer.isPending(WEB), true, "not synced while a key is failing");
  await writer.stop();
  assert.equal(clock.pendingTimers, 0, "stopping cancels the pending retry");
});

Deno.test("TargetingWriter starts the backoff over after a write went through", async () => {
  const { clock, view, store, stats, writer } = setup(["d1"]);
  store.deny = true;
  await writer.start();
  await clock.advance(10_000);
  const failed = store.attempts.get("d1.default.web")!.length;
  assert.ok(failed >= 6, `${failed} attempts in 10 s`);

  store.deny = false;
  await clock.advance(30_000);
  assert.equal(stats.desiredPuts, 1);
  assert.equal(writer.isPending(WEB), false);

  // The next failure is retried after 100 ms again, not after the last delay.
  store.deny = true;
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }, "web:2"));
  writer.mark(WEB);
  await clock.advance(1_000);
  const since = store.attempts.get("d1.default.web")!.slice(failed + 1);
  assert.ok(since.length >= 3, `${since.length} attempts in the second second`);
  assert.ok(gaps(since)[0]! <= 120, `first retry after ${gaps(since)[0]} ms`);
  await writer.stop();
});

Deno.test("TargetingWriter writes the other devices' keys while one is denied", async () => {
  const { clock, view, store, stats, writer } = setup(["d1", "d2", "d3"]);
  const denied = store.put.bind(store);
  store.put = (deviceId, ref, value) =>
    deviceId === "d2" ? Promise.reject(new Error("denied")) : denied(deviceId, ref, value);
  await writer.start();
  assert.deepEqual([...store.values.keys()].sort(), ["d1.default.web", "d3.default.web"]);
  assert.equal(stats.desiredPuts, 2);
  assert.equal(stats.writeErrors, 1);
  assert.equal(writer.isPending(WEB), true);

  // Once d2 left the targets, its failing key needs no retry and the deployment is synced.
  view.setDevice("d2", { site: "b" });
  writer.deviceLabelsChanged("d2", { site: "b" });
  await clock.advance(50);
  assert.equal(writer.isPending(WEB), false);
  await clock.advance(60_000);
  assert.equal(stats.writeErrors, 1, "no retry of a key no longer wanted");
  assert.equal(clock.pendingTimers, 0);
  await writer.stop();
});
