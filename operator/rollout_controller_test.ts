/**
 * The rollout controller on a fake clock with in-memory ports: what it hands the targeting and
 * status controllers, when it decides again by itself (a bake ending), how it applies people's
 * actions once, and what it does when its population cannot be stored.
 */
import assert from "node:assert/strict";
import {
  type DeploymentRef,
  type DeploymentState,
  type DesiredState,
  recordRevision,
  type Revision,
  type RolloutDevice,
  type StoredDeployment,
} from "../core/mod.ts";
import { revisionHash } from "../core/revisions.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { storedDeployment } from "../testing/operator_fakes.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import type { PopulationStore } from "./population_store.ts";
import { RolloutController } from "./rollout_controller.ts";

const REF: DeploymentRef = { namespace: "default", name: "web" };
const SITE = { matchLabels: { site: "a" } };
const IDS = ["d1", "d2", "d3", "d4"];

class MemoryPopulations implements PopulationStore {
  readonly saved = new Map<string, { revision: number; devices: RolloutDevice[] }>();
  failing = false;
  load(ref: DeploymentRef) {
    return Promise.resolve(this.saved.get(`${ref.namespace}/${ref.name}`));
  }
  save(ref: DeploymentRef, revision: number, devices: readonly RolloutDevice[]) {
    if (this.failing) return Promise.reject(new Error("permissions violation"));
    this.saved.set(`${ref.namespace}/${ref.name}`, { revision, devices: [...devices] });
    return Promise.resolve();
  }
  removePopulation(ref: DeploymentRef) {
    this.saved.delete(`${ref.namespace}/${ref.name}`);
    return Promise.resolve();
  }
}

function progressive(
  image: string,
  generation: number,
  bake = "0s",
  onFailure: "Pause" | "Rollback" = "Rollback",
): StoredDeployment {
  const d = storedDeployment("web", SITE, image);
  return {
    ...d,
    metadata: { ...d.metadata, generation },
    spec: {
      ...d.spec,
      rollout: { strategy: "Progressive", batches: [{ limit: 1 }], bake, onFailure },
    },
  };
}

/**
 * A controller over a view of four online devices, every one running `v1` (revision 1).
 * `onStatus` runs inside each decision (when it hands its status on).
 */
function rig(options: { clock?: FakeClock; onStatus?: () => void } = {}) {
  const clock = options.clock ?? new FakeClock();
  const view = new FleetView({ allowUnbound: true });
  const populations = new MemoryPopulations();
  let history: Revision[] = [];
  const wishes: DeploymentRef[] = [];
  const statuses: DeploymentRef[] = [];
  const controller = new RolloutController({
    view,
    populations,
    revisionsOf: () => history,
    initialRead: new InitialRead([]),
    clock,
    log: silentLogger,
    // Devices stay reachable however far the clock moves: heartbeats are not what is tested.
    staleAfterMs: 24 * 3_600_000,
    wishesChanged: (ref) => wishes.push(ref),
    statusChanged: (ref) => {
      statuses.push(ref);
      options.onStatus?.();
    },
    retry: { initialMs: 1_000, maxMs: 8_000, factor: 2, jitter: 0 },
  });
  for (const id of IDS) {
    view.setDevice(id, { site: "a" });
    view.lastSeen.set(id, clock.now());
  }
  const v1 = storedDeployment("web", SITE, "localhost/web:v1");
  const record = (d: StoredDeployment) => {
    history = recordRevision(history, {
      score: d.spec.score,
      generation: d.metadata.generation,
      now: clock.now(),
    }).revisions;
  };
  record(v1);
  const apply = (d: StoredDeployment) => {
    view.deployments.set(REF, d);
    view.targets.set(REF, new Set(IDS));
    record(d);
    controller.mark(REF);
  };
  const report = (id: string, d: StoredDeployment, phase: DeploymentState["phase"]) => {
    const state: DeploymentState = {
      deviceId: id,
      namespace: REF.namespace,
      deployment: REF.name,
      generation: d.metadata.generation,
      phase,
      lastError: phase === "Failed" ? "image pull failed" : null,
      lastEventAt: new Date(clock.now()).toISOString(),
      revision: revisionHash(d.spec.score),
    };
    view.setState(state, REF, id);
    controller.reported(REF, id);
  };
  const imageOf = (id: string): string | null | undefined => {
    const wish = view.rolloutWishes.get(REF)?.get(id);
    if (wish === null || wish === undefined) return wish;
    return (wish.score.data as { services: { image: string }[] }).services[0]!.image;
  };
  for (const id of IDS) {
    view.setDesired(REF, id, {
      namespace: REF.namespace,
      name: REF.name,
      generation: 1,
      score: v1.spec.score,
    } as DesiredState);
  }
  return { clock, view, populations, controller, apply, report, imageOf, wishes, statuses, v1 };
}

Deno.test("RolloutController gives the canary the new revision, the others the revision they run, and the rest once the canary is healthy", async () => {
  const r = rig();
  const v2 = progressive("localhost/web:v2", 2);
  r.controller.onAction({ ready: true });
  r.apply(v2);
  await r.clock.advance(50);
  const onV2 = IDS.filter((id) => r.imageOf(id) === "localhost/web:v2");
  assert.equal(onV2.length, 1);
  const canary = onV2[0]!;
  assert.deepEqual(
    IDS.filter((id) => id !== canary).map((id) => r.imageOf(id)),
    ["localhost/web:v1", "localhost/web:v1", "localhost/web:v1"],
  );
  assert.equal(r.view.rollouts.get(REF)?.stable?.number, 1, "the revision devices ran");
  assert.equal(r.populations.saved.get("default/web")?.devices.length, 4, "population stored");

  r.report(canary, v2, "Running");
  await r.clock.advance(50);
  assert.deepEqual(IDS.map((id) => r.imageOf(id)), IDS.map(() => "localhost/web:v2"));
  assert.ok(r.wishes.length >= 2 && r.statuses.length >= 2);
});

Deno.test("RolloutController decides again when a bake ends, with no new report", async () => {
  const r = rig();
  const v2 = progressive("localhost/web:v2", 2, "5m");
  r.controller.onAction({ ready: true });
  r.apply(v2);
  await r.clock.advance(50);
  const canary = IDS.find((id) => r.imageOf(id) === "localhost/web:v2")!;
  r.report(canary, v2, "Running");
  await r.clock.advance(50);
  assert.ok(r.view.rollouts.get(REF)?.message.includes("bak"), r.view.rollouts.get(REF)?.message);
  assert.equal(IDS.filter((id) => r.imageOf(id) === "localhost/web:v2").length, 1);
  await r.clock.advance(5 * 60_000);
  assert.equal(IDS.filter((id) => r.imageOf(id) === "localhost/web:v2").length, 4);
});

Deno.test("RolloutController waits for the actions stream to be read before deciding, and applies each action once", async () => {
  const r = rig();
  const v2 = progressive("localhost/web:v2", 2);
  r.apply(v2);
  await r.clock.advance(50);
  assert.equal(r.view.rollouts.get(REF), undefined, "a pause kept in the stream may be unread");
  r.controller.onAction({
    seq: 7,
    ref: REF,
    action: { verb: "pause", by: "mia" },
    at: r.clock.now(),
  });
  r.controller.onAction({ ready: true });
  await r.clock.advance(50);
  const paused = r.view.rollouts.get(REF)!;
  assert.equal(paused.phase, "Paused");
  assert.deepEqual(
    { seq: paused.lastAction?.seq, verb: paused.lastAction?.verb, by: paused.lastAction?.by },
    { seq: 7, verb: "pause", by: "mia" },
  );
  // The stream read again after a restart: an action the status already took is not re-applied.
  r.controller.onAction({ seq: 7, ref: REF, action: { verb: "pause", by: "mia" }, at: 0 });
  r.controller.onAction({ seq: 8, ref: REF, action: { verb: "pause", by: "ops" }, at: 0 });
  await r.clock.advance(50);
  const again = r.view.rollouts.get(REF)!;
  assert.equal(again.lastAction?.seq, 8);
  assert.match(again.lastAction?.refused ?? "", /already paused/);
  assert.equal(again.pausedBy, "mia");
  // The broker lost the stream and it was made anew: its numbers start over, its actions count.
  r.clock.jump(1_000);
  r.controller.onAction({
    seq: 1,
    ref: REF,
    action: { verb: "resume", by: "ops" },
    at: r.clock.now(),
  });
  await r.clock.advance(50);
  assert.equal(r.view.rollouts.get(REF)?.phase, "Progressing");
  assert.equal(r.view.rollouts.get(REF)?.lastAction?.seq, 1);
});

Deno.test("RolloutController writes nothing while its population cannot be stored, and retries with backoff", async () => {
  const r = rig();
  r.populations.failing = true;
  r.controller.onAction({ ready: true });
  r.apply(progressive("localhost/web:v2", 2));
  await r.clock.advance(50);
  assert.equal(r.view.rolloutWishes.get(REF), undefined, "devices keep what they run");
  r.populations.failing = false;
  await r.clock.advance(1_000);
  assert.equal(IDS.filter((id) => r.imageOf(id) === "localhost/web:v2").length, 1);
});

Deno.test("RolloutController lets go of a deployment that is Immediate again, and of a deleted one's population", async () => {
  const r = rig();
  r.controller.onAction({ ready: true });
  r.apply(progressive("localhost/web:v2", 2));
  await r.clock.advance(50);
  assert.ok(r.view.rolloutWishes.has(REF));
  r.apply({ ...r.v1, metadata: { ...r.v1.metadata, generation: 3 } });
  await r.clock.advance(50);
  assert.equal(r.view.rolloutWishes.has(REF), false);
  assert.equal(r.view.rollouts.has(REF), false);
  r.apply(progressive("localhost/web:v2", 4));
  await r.clock.advance(50);
  r.view.deployments.delete(REF);
  r.controller.mark(REF);
  await r.clock.advance(50);
  assert.equal(r.populations.saved.size, 0);
});

Deno.test("RolloutController marks a retried device's value so its agent tries again at once, once per retry", async () => {
  const r = rig();
  const v2 = progressive("localhost/web:v2", 2, "0s", "Pause");
  r.controller.onAction({ ready: true });
  r.apply(v2);
  await r.clock.advance(50);
  const canary = IDS.find((id) => r.imageOf(id) === "localhost/web:v2")!;
  r.report(canary, v2, "Failed");
  await r.clock.advance(50);
  assert.equal(r.view.rollouts.get(REF)?.phase, "Degraded");
  const retryOf = (id: string) => r.view.rolloutWishes.get(REF)?.get(id)?.retry;
  const retry = async (seq: number) => {
    r.controller.onAction({
      seq,
      ref: REF,
      action: { verb: "retry", by: "mia" },
      at: r.clock.now(),
    });
    await r.clock.advance(50);
  };
  assert.equal(retryOf(canary), undefined);
  await retry(1);
  assert.equal(retryOf(canary), 1);
  assert.deepEqual(IDS.filter((id) => id !== canary).map(retryOf), [
    undefined,
    undefined,
    undefined,
  ]);
  // Written; later decisions keep the number (the agent must not see it change back).
  r.view.setDesired(REF, canary, r.view.rolloutWishes.get(REF)!.get(canary)!);
  r.report(canary, v2, "Failed");
  await r.clock.advance(50);
  assert.equal(retryOf(canary), 1);
  await retry(2);
  assert.equal(retryOf(canary), 2);
});

/** A fake clock whose monotonic time runs `computed` ms ahead, moved inside a decision. */
class ComputingClock extends FakeClock {
  computed = 0;
  override monotonic(): number {
    return super.monotonic() + this.computed;
  }
}

Deno.test("RolloutController spaces decisions for reports by twice what the last one computed, but not for the report that may end the batch", async () => {
  const clock = new ComputingClock();
  // Every decision computes 100 ms, as one over 100,000 devices does.
  const r = rig({ clock, onStatus: () => clock.computed += 100 });
  const base = progressive("localhost/web:v2", 2);
  const v2 = {
    ...base,
    spec: { ...base.spec, rollout: { ...base.spec.rollout, batches: [{ limit: 2 }] } },
  };
  r.controller.onAction({ ready: true });
  r.apply(v2);
  await r.clock.advance(50);
  const canaries = IDS.filter((id) => r.imageOf(id) === "localhost/web:v2");
  assert.equal(canaries.length, 2);
  const healthy = () => r.view.rollouts.get(REF)?.batches[0]?.healthy;
  r.report(canaries[0]!, v2, "Running");
  await r.clock.advance(150);
  assert.equal(healthy(), 0, "one of two reports: decided 200 ms after the last decision only");
  r.report(canaries[1]!, v2, "Running");
  await r.clock.advance(30);
  assert.equal(IDS.filter((id) => r.imageOf(id) === "localhost/web:v2").length, 4);
});

Deno.test("RolloutController decides on a failure at once, however long its last decision computed", async () => {
  const clock = new ComputingClock();
  const r = rig({ clock, onStatus: () => clock.computed += 100 });
  const base = progressive("localhost/web:v2", 2, "0s", "Pause");
  const v2 = {
    ...base,
    spec: { ...base.spec, rollout: { ...base.spec.rollout, batches: [{ limit: 2 }] } },
  };
  r.controller.onAction({ ready: true });
  r.apply(v2);
  await r.clock.advance(50);
  const canary = IDS.find((id) => r.imageOf(id) === "localhost/web:v2")!;
  r.report(canary, v2, "Failed");
  await r.clock.advance(30);
  assert.equal(r.view.rollouts.get(REF)?.phase, "Degraded");
});

Deno.test("RolloutController spaces decisions other controllers ask for, not those a person's action asks for", async () => {
  const clock = new ComputingClock();
  const r = rig({ clock, onStatus: () => clock.computed += 100 });
  r.controller.onAction({ ready: true });
  r.apply(progressive("localhost/web:v2", 2));
  await r.clock.advance(50);
  const decisions = r.statuses.length;
  r.controller.mark(REF);
  await r.clock.advance(150);
  assert.equal(r.statuses.length, decisions, "targets or reachability: 200 ms after");
  await r.clock.advance(60);
  assert.equal(r.statuses.length, decisions + 1);
  r.controller.onAction({ seq: 1, ref: REF, action: { verb: "pause", by: "mia" }, at: 0 });
  await r.clock.advance(30);
  assert.equal(r.view.rollouts.get(REF)?.phase, "Paused");
});
