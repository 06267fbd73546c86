import assert from "node:assert/strict";
import { type DeploymentRef, DeploymentState, desiredStateOf, type Phase } from "../core/mod.ts";
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
  const view = new FleetView({ allowUnbound: true });
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

function stateOf(deviceId: string, ref: DeploymentRef) {
  const state = DeploymentState.parse({
    deviceId,
    namespace: ref.namespace,
    deployment: ref.name,
    generation: 1,
    phase: "Running",
    lastError: null,
    lastEventAt: new Date(Date.UTC(2030, 0, 1)).toISOString(),
  });
  return { type: "put" as const, deviceId, ref, state };
}

/** What the view keeps: "namespace/name deviceId", sorted. */
function kept(view: FleetView): string[] {
  return [...view.states].flatMap(([ref, devices]) =>
    [...devices.keys()].map((d) => `${ref.namespace}/${ref.name} ${d}`)
  ).sort();
}

Deno.test("AggregateFlusher keeps no report of a deployment not targeted at the device", async () => {
  const { view, flusher, stop } = setup();
  view.setDevice("d2", { site: "b" });
  flusher.onReport(stateOf("d1", WEB));
  // d2 is not targeted by web, and the other names are deployments that do not exist.
  flusher.onReport(stateOf("d2", WEB));
  for (let i = 0; i < 1_000; i++) {
    flusher.onReport(stateOf("d2", { namespace: "default", name: `made-up-${i}` }));
  }
  assert.deepEqual(kept(view), ["default/web d1"]);
  assert.equal(view.states.size, 1, "no entry per made-up deployment either");

  // A device still holding desired state of it (being removed from it) is heard.
  view.setDesired(WEB, "d2", desiredStateOf(view.deployments.get(WEB)!));
  flusher.onReport(stateOf("d2", WEB));
  assert.deepEqual(kept(view), ["default/web d1", "default/web d2"]);
  // Once it holds none, its next report drops what was kept.
  view.setDesired(WEB, "d2", undefined);
  flusher.onReport(stateOf("d2", WEB));
  assert.deepEqual(kept(view), ["default/web d1"]);
  await stop();
});

Deno.test("AggregateFlusher keeps every report read before the targets are known, and those targeted once they are", () => {
  const clock = new FakeClock();
  const view = new FleetView({ allowUnbound: true });
  view.setDevice("d1", { site: "a" });
  view.setDevice("d2", { site: "b" });
  const initialRead = new InitialRead(["source", "device-state"]);
  const flusher = new AggregateFlusher({
    view,
    source: new RecordingSource(clock),
    initialRead,
    clock,
    log: silentLogger,
    stats: zeroStats(),
    flushIntervalMs: FLUSH_MS,
    staleAfterMs: 3_600_000,
    syncPending: () => false,
  });
  const made = { namespace: "default", name: "made-up" };
  // Reports come before the deployment itself is read: none is dropped yet.
  flusher.onReport(stateOf("d1", WEB));
  flusher.onReport(stateOf("d2", WEB));
  flusher.onReport(stateOf("d2", made));
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }));
  assert.deepEqual(kept(view), ["default/made-up d2", "default/web d1", "default/web d2"]);
  // The read completes (the operator prunes then): the made-up deployment goes, web waits
  // for its targets.
  initialRead.done("source");
  assert.equal(initialRead.done("device-state"), true);
  view.pruneStates();
  assert.deepEqual(kept(view), ["default/web d1", "default/web d2"]);
  // Its targets are resolved: only d1's stays.
  view.resolveTargets(WEB);
  assert.deepEqual(kept(view), ["default/web d1"]);
});
