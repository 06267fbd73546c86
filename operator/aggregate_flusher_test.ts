import assert from "node:assert/strict";
import { type DeploymentRef, DeploymentState, type Phase } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { RecordingSource, storedDeployment } from "../testing/operator_fakes.ts";
import { AggregateFlusher } from "./aggregate_flusher.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import { zeroStats } from "./operator_stats.ts";

const WEB: DeploymentRef = { namespace: "default", name: "web" };
const FLUSH_MS = 1_000;

function setup(syncPending: (ref: DeploymentRef) => boolean = () => false) {
  const clock = new FakeClock();
  const view = new FleetView();
  view.setDevice("d1", { site: "a" });
  view.lastSeen.set("d1", clock.now());
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }));
  view.resolveTargets(WEB);
  const source = new RecordingSource(clock);
  const stats = zeroStats();
  const flusher = new AggregateFlusher({
    view,
    source,
    initialRead: new InitialRead([]),
    clock,
    log: silentLogger,
    stats,
    flushIntervalMs: FLUSH_MS,
    staleAfterMs: 3_600_000,
    syncPending,
  });
  const controller = new AbortController();
  const running = flusher.run(controller.signal);
  const stop = async () => {
    controller.abort();
    await running;
  };
  return { clock, view, source, stats, flusher, stop };
}

function report(phase: Phase, i: number) {
  const state = DeploymentState.parse({
    deviceId: "d1",
    namespace: "default",
    deployment: "web",
    generation: 1,
    phase,
    lastError: phase === "Failed" ? `attempt ${i}` : null,
    lastEventAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
  });
  return { type: "put" as const, deviceId: "d1", ref: WEB, state };
}

Deno.test("AggregateFlusher writes a deployment's status at most once per flush interval", async () => {
  const { clock, source, flusher, stop } = setup();
  // A report every 10 ms for 3.5 s, each changing the aggregate.
  const phases: Phase[] = ["Pending", "Failed", "Running"];
  for (let i = 0; i < 350; i++) {
    flusher.onReport(report(phases[i % 3]!, i));
    await clock.advance(10);
  }
  await clock.advance(2 * FLUSH_MS);
  await stop();
  const at = source.writes.map((w) => w.at);
  // The first change goes out on the next tick, then one per interval, and the last state.
  assert.equal(at.length, 5, `writes at ${at.join(", ")}`);
  assert.ok(at[0]! <= 100, `first write at ${at[0]} ms`);
  for (let i = 1; i < at.length; i++) assert.ok(at[i]! - at[i - 1]! >= FLUSH_MS);
  assert.equal(source.writes.at(-1)?.status.aggregate.lastError?.message, "attempt 349");
});

Deno.test("AggregateFlusher writes nothing while the aggregate is unchanged, or targets are not synced", async () => {
  let pending = true;
  const { clock, source, flusher, stop } = setup(() => pending);
  flusher.markDirty(WEB);
  await clock.advance(5 * FLUSH_MS);
  assert.equal(source.writes.length, 0, "waits for the desired state to be synced");
  pending = false;
  await clock.advance(100);
  assert.equal(source.writes.length, 1);
  for (let i = 0; i < 10; i++) {
    flusher.markDirty(WEB);
    await clock.advance(FLUSH_MS);
  }
  await stop();
  assert.equal(source.writes.length, 1, "an unchanged aggregate is not written again");
});

Deno.test("AggregateFlusher backs off when status writes keep failing", async () => {
  const { clock, source, stats, flusher, stop } = setup();
  source.failWrites = true;
  flusher.markDirty(WEB);
  await clock.advance(120_000);
  // Spaced by the flush interval at first, then by the growing backoff (up to 30 s).
  const at = source.writes.map((w) => w.at);
  assert.ok(at.length >= 6 && at.length <= 14, `${at.length} attempts in two minutes`);
  assert.equal(stats.writeErrors, at.length);
  source.failWrites = false;
  await clock.advance(31_000);
  await stop();
  assert.equal(stats.statusWrites, 1);
});

Deno.test("AggregateFlusher reports a device targeting refused as Failed with the refusal, whatever the device reports", async () => {
  const { clock, view, source, flusher, stop } = setup();
  const refusal = {
    by: { namespace: "default", name: "api" },
    message: "port 8080/tcp is already used by deployment default/api",
    at: "2030-01-01T00:00:00.000Z",
  };
  view.refusals.set(WEB, new Map([["d1", refusal]]));
  flusher.markDirty(WEB);
  await clock.advance(FLUSH_MS);
  const expected = {
    matchedDeviceCount: 1,
    succeeded: 0,
    failed: 1,
    pending: 0,
    unreachable: 0,
    lastError: { deviceId: "d1", message: refusal.message, at: refusal.at },
  };
  assert.deepEqual(source.writes.map((w) => w.status.aggregate), [expected]);

  // A report of the deployment's old containers, then none at all: still Failed.
  flusher.onReport(report("Running", 1));
  await clock.advance(FLUSH_MS);
  flusher.onReport({ type: "delete", deviceId: "d1", ref: WEB });
  await clock.advance(FLUSH_MS);
  assert.equal(source.writes.length, 1, "nothing changed");

  view.refusals.delete(WEB);
  flusher.markDirty(WEB);
  await clock.advance(FLUSH_MS);
  await stop();
  assert.equal(source.writes.at(-1)?.status.aggregate.pending, 1);
});
