import assert from "node:assert/strict";
import {
  assignBatches,
  decideRollout,
  type DeviceObservation,
  type DeviceReport,
  freezePopulation,
  type ReportPhase,
  type RolloutAction,
  type RolloutDecision,
  type RolloutDevice,
  type RolloutEventType,
} from "./rollout.ts";
import { progressivePolicy, Rollout } from "./rollout_policy.ts";
import { RolloutStatus } from "./rollout_status.ts";
import type { RevisionRef } from "./revisions.ts";
import type { Labels } from "./selector.ts";

const REF = { namespace: "default", name: "web" };
const STABLE: RevisionRef = { number: 1, hash: "stable0000000000" };
const NEW: RevisionRef = { number: 2, hash: "new0000000000000" };
const NEWER: RevisionRef = { number: 3, hash: "newer00000000000" };
const T0 = Date.parse("2026-12-06T10:00:00Z");
const MINUTE = 60_000;

function devices(count: number, labels: (i: number) => Labels = () => ({})): RolloutDevice[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `dev-${String(i).padStart(3, "0")}`,
    labels: labels(i),
  }));
}

function policyOf(rollout: Record<string, unknown>) {
  const policy = progressivePolicy(Rollout.parse({ strategy: "Progressive", ...rollout }));
  assert.ok(policy);
  return policy;
}

/**
 * A fleet under one rollout: devices report what they are given (or are told to fail), the
 * status goes through JSON between decisions as it does through the KV store, and time moves
 * only when a test says.
 */
class Fleet {
  now = T0;
  status: RolloutStatus | undefined;
  revision = NEW;
  population: RolloutDevice[];
  observed = new Map<string, DeviceObservation>();
  last!: RolloutDecision;
  /** Every revision each device was ever given, in order. */
  given = new Map<string, number[]>();

  constructor(
    public policy: ReturnType<typeof policyOf>,
    all: RolloutDevice[],
    public stable: RevisionRef | null = STABLE,
  ) {
    this.population = freezePopulation(REF, all);
    for (const device of all) {
      this.observed.set(device.id, {
        online: true,
        ...(stable ? { report: this.reportOf(stable.hash, "Succeeded") } : {}),
      });
    }
  }

  reportOf(revision: string, phase: ReportPhase, message?: string): DeviceReport {
    return { revision, phase, at: this.now, ...(message ? { message } : {}) };
  }

  decide(actions: RolloutAction[] = []): RolloutDecision {
    this.last = decideRollout({
      policy: this.policy,
      revision: this.revision,
      population: this.population,
      devices: this.observed,
      ...(this.status ? { status: this.status } : { initialStable: this.stable }),
      actions,
      now: this.now,
    });
    this.status = RolloutStatus.parse(JSON.parse(JSON.stringify(this.last.status)));
    for (const [id, target] of this.last.targets) {
      const list = this.given.get(id) ?? [];
      const number = target?.number ?? 0;
      if (list.at(-1) !== number) list.push(number);
      this.given.set(id, list);
    }
    return this.last;
  }

  set(id: string, change: Partial<DeviceObservation>): void {
    this.observed.set(id, { ...this.observed.get(id)!, ...change });
  }

  report(id: string, revision: RevisionRef, phase: ReportPhase, message?: string): void {
    this.set(id, { report: this.reportOf(revision.hash, phase, message) });
  }

  /** Devices targeted with `revision` now. */
  targeted(revision: RevisionRef | null): string[] {
    return [...this.last.targets].filter(([, t]) => t?.number === revision?.number).map(([id]) =>
      id
    ).sort();
  }

  /** Online devices given the new revision report it with `phase` (Succeeded by default). */
  converge(phase: ReportPhase = "Succeeded", only?: (id: string) => boolean): void {
    for (const id of this.targeted(this.revision)) {
      const observation = this.observed.get(id);
      if (observation === undefined || !observation.online || (only && !only(id))) continue;
      if (observation.report?.revision === this.revision.hash) continue;
      this.report(id, this.revision, phase, phase === "Failed" ? "image pull failed" : undefined);
    }
  }

  eventTypes(): RolloutEventType[] {
    return this.last.events.map((e) => e.type);
  }

  batchOf(id: string): number {
    const batches = assignBatches(this.policy, this.population);
    return batches[this.population.findIndex((d) => d.id === id)]! + 1;
  }

  membersOf(batch: number): string[] {
    const batches = assignBatches(this.policy, this.population);
    return this.population.filter((_, i) => batches[i] === batch - 1).map((d) => d.id).sort();
  }
}

Deno.test("freezePopulation() orders devices by deployment and id only, whatever the input order", () => {
  const all = devices(50);
  const a = freezePopulation(REF, all).map((d) => d.id);
  const b = freezePopulation(REF, [...all].reverse()).map((d) => d.id);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, all.map((d) => d.id), "not the id order: canaries spread over the fleet");
  const other = freezePopulation({ namespace: "default", name: "db" }, all).map((d) => d.id);
  assert.notDeepEqual(a, other, "another deployment picks other canaries");
});

Deno.test("assignBatches() is cumulative, rounds percentages up, ANDs selectors and leaves the rest to the final batch", () => {
  const all = freezePopulation(REF, devices(20, (i) => ({ site: i < 4 ? "lab" : "field" })));
  const policy = policyOf({
    batches: [
      { limit: 2, selector: { matchLabels: { site: "lab" } } },
      { limit: "25%" },
      { limit: "50%" },
    ],
  });
  const batches = assignBatches(policy, all);
  const size = (b: number) => batches.filter((x) => x === b).length;
  assert.deepEqual([size(0), size(1), size(2), size(3)], [2, 3, 5, 10]);
  all.forEach((d, i) => {
    if (batches[i] === 0) assert.equal(d.labels.site, "lab");
  });
  // Restart: the same frozen population gives the same batches.
  assert.deepEqual(assignBatches(policy, freezePopulation(REF, [...all].reverse())), batches);
});

Deno.test("assignBatches() gives a batch nothing when earlier batches already reached its limit", () => {
  const all = freezePopulation(REF, devices(10));
  const batches = assignBatches(policyOf({ batches: [{ limit: "50%" }, { limit: 3 }] }), all);
  assert.equal(batches.filter((b) => b === 1).length, 0);
  assert.equal(batches.filter((b) => b === 2).length, 5);
});

Deno.test("decideRollout() takes a good revision canary → 50% → rest, and the fleet's stable revision moves", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }, { limit: "50%" }] }), devices(10));
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["RolloutStarted", "BatchStarted"]);
  assert.equal(fleet.last.events[1]!.message, "Batch 1 of 3 started: 1 device gets revision 2");
  assert.equal(
    fleet.last.events[0]!.message,
    "rollout of revision 2 started over 10 devices in 3 batches; stable revision 1",
  );
  assert.deepEqual(fleet.targeted(NEW), fleet.membersOf(1));
  assert.equal(fleet.targeted(NEW).length, 1);
  assert.equal(fleet.status!.phase, "Progressing");
  assert.match(fleet.status!.message, /Batch 1 of 3: waiting for 1 more of 1 reachable device/);

  fleet.converge();
  fleet.now += MINUTE;
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["BatchSucceeded", "BatchStarted"]);
  assert.equal(fleet.status!.currentBatch, 2);
  assert.equal(fleet.targeted(NEW).length, 5);

  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 3);
  assert.equal(fleet.targeted(NEW).length, 10);
  fleet.converge();
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["BatchSucceeded", "Completed"]);
  assert.equal(fleet.status!.phase, "Complete");
  assert.deepEqual(fleet.status!.stable, NEW);
  assert.deepEqual(
    fleet.status!.batches.map((b) => [b.selected, b.updated, b.healthy]),
    [[1, 1, 1], [4, 4, 4], [5, 5, 5]],
  );
  assert.ok(fleet.status!.batches.every((b) => b.completedAt !== undefined));
  const complete = fleet.status!.conditions.find((c) => c.type === "Complete");
  assert.equal(complete?.status, "True");
  assert.match(complete!.message, /^Complete: revision 2 was given to all 10 devices$/);
  assert.equal(fleet.status!.conditions.find((c) => c.type === "Progressing")?.message, "");
  assert.equal(fleet.last.wakeAt, undefined);
});

Deno.test("decideRollout() called again with nothing new repeats itself and records no event (restart-safe)", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 2 }, { limit: "50%" }], bake: "10m" }),
    devices(8),
  );
  fleet.decide();
  fleet.converge();
  fleet.now += MINUTE;
  const first = fleet.decide();
  // An operator restarted here reads the status back and decides with the same inputs.
  const again = fleet.decide();
  assert.deepEqual(again.events, []);
  assert.deepEqual(again.status, RolloutStatus.parse(JSON.parse(JSON.stringify(first.status))));
  assert.deepEqual(again.targets, first.targets);
  assert.equal(again.wakeAt, first.wakeAt);
});

Deno.test("decideRollout() bakes a healthy batch before the next one, and restarts the bake when health drops", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 2 }], bake: "15m" }), devices(6));
  fleet.decide();
  fleet.converge();
  fleet.now += MINUTE;
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 1);
  assert.equal(fleet.status!.batches[0]!.bakeStartedAt, new Date(fleet.now).toISOString());
  assert.equal(fleet.last.wakeAt, fleet.now + 15 * MINUTE);
  assert.match(fleet.status!.message, /baking for 15m until 2026-12-06T10:16:00.000Z/);

  fleet.now += 5 * MINUTE;
  const [canary] = fleet.membersOf(1);
  fleet.report(canary!, NEW, "Progressing");
  fleet.decide();
  assert.equal(fleet.status!.batches[0]!.bakeStartedAt, undefined, "health dropped: bake restarts");
  fleet.report(canary!, NEW, "Succeeded");
  fleet.decide();
  const bakeEnd = fleet.now + 15 * MINUTE;
  fleet.now = bakeEnd - 1;
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 1);
  fleet.now = bakeEnd;
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 2);
  assert.deepEqual(fleet.eventTypes(), ["BatchSucceeded", "BatchStarted"]);
  assert.equal(fleet.status!.batches[0]!.completedAt, new Date(bakeEnd).toISOString());
});

Deno.test("decideRollout() leaves offline devices out of the threshold: counted, not failed, given the revision", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 10 }], successThreshold: "90%" }),
    devices(20),
  );
  const members = fleet.membersOf(1);
  fleet.set(members[0]!, { online: false });
  fleet.decide();
  assert.ok(fleet.targeted(NEW).includes(members[0]!), "it gets the revision when it returns");
  // 9 reachable, 90 % of 9 rounded up is 9: all of them must be healthy.
  fleet.converge("Succeeded", (id) => id !== members[1]);
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 1);
  assert.deepEqual(
    { ...fleet.status!.batches[0]!, startedAt: undefined },
    {
      selected: 10,
      updated: 8,
      healthy: 8,
      failed: 0,
      timedOut: 0,
      offline: 1,
      startedAt: undefined,
    },
  );
  assert.match(fleet.status!.message, /waiting for 1 more of 9 reachable devices.*1 offline/);
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 2);
});

Deno.test("decideRollout() waits, without failing, while every device of a batch is offline", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 2 }] }), devices(5));
  for (const id of fleet.membersOf(1)) fleet.set(id, { online: false });
  fleet.now += 60 * MINUTE;
  fleet.decide();
  fleet.now += 60 * MINUTE;
  fleet.decide();
  assert.equal(fleet.status!.phase, "Progressing");
  assert.match(fleet.status!.message, /all 2 devices are offline/);
});

Deno.test("decideRollout() fails a batch once failures leave the threshold out of reach, or pass maxFailures", () => {
  // 10 devices at 80 %: two failures still leave 8 to reach it; a third does not.
  const lenient = new Fleet(
    policyOf({ batches: [{ limit: 10 }], successThreshold: "80%", onFailure: "Pause" }),
    devices(10),
  );
  lenient.decide();
  const members = lenient.membersOf(1);
  lenient.report(members[0]!, NEW, "Failed", "exit 1");
  lenient.report(members[1]!, NEW, "Failed", "exit 1");
  lenient.decide();
  assert.equal(lenient.status!.phase, "Progressing");
  lenient.report(members[2]!, NEW, "Failed", "exit 1");
  lenient.decide();
  assert.equal(lenient.status!.phase, "Degraded");
  assert.match(lenient.status!.failure!.message, /3 of 10 devices failed.*8 of 10 reachable/);

  const strict = new Fleet(
    policyOf({
      batches: [{ limit: 10 }],
      successThreshold: "50%",
      maxFailures: 1,
      onFailure: "Pause",
    }),
    devices(10),
  );
  strict.decide();
  strict.report(members[0]!, NEW, "Failed", "exit 1");
  strict.decide();
  assert.equal(strict.status!.phase, "Progressing", "one failure is within maxFailures 1");
  strict.report(members[1]!, NEW, "Failed", "exit 1");
  strict.decide();
  assert.equal(strict.status!.phase, "Degraded");
  assert.match(strict.status!.failure!.message, /more than maxFailures 1/);

  // A percentage of the batch, rounded down: 10 % of 10 tolerates one failure.
  const percent = new Fleet(
    policyOf({
      batches: [{ limit: 10 }],
      successThreshold: "50%",
      maxFailures: "10%",
      onFailure: "Pause",
    }),
    devices(10),
  );
  percent.decide();
  percent.report(members[0]!, NEW, "Failed", "exit 1");
  percent.decide();
  assert.equal(percent.status!.phase, "Progressing");
  percent.report(members[1]!, NEW, "Failed", "exit 1");
  percent.decide();
  assert.match(percent.status!.failure!.message, /more than maxFailures 10%/);
});

Deno.test("decideRollout() times out an online device that is not healthy in deviceTimeout, never an offline one", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 2 }], deviceTimeout: "5m", onFailure: "Pause" }),
    devices(6),
  );
  const [slow, away] = fleet.membersOf(1);
  fleet.set(away!, { online: false });
  fleet.decide();
  assert.equal(fleet.last.wakeAt, T0 + 5 * MINUTE);
  fleet.now = T0 + 5 * MINUTE - 1;
  fleet.decide();
  assert.equal(fleet.status!.phase, "Progressing");
  // The offline device returns late: its clock starts when it is back.
  fleet.set(away!, { online: true, onlineSince: fleet.now });
  fleet.report(slow!, NEW, "Progressing");
  fleet.now = T0 + 5 * MINUTE;
  fleet.decide();
  assert.equal(fleet.status!.phase, "Degraded");
  assert.equal(fleet.status!.batches[0]!.timedOut, 1);
  assert.match(fleet.status!.failure!.message, new RegExp(`${slow}: not healthy after 5m`));
  assert.deepEqual(fleet.eventTypes(), ["BatchFailed"]);
});

Deno.test("decideRollout() rolls back on failure: the canary returns to stable, the other devices are never touched", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }, { limit: "50%" }] }), devices(10));
  fleet.decide();
  const [canary] = fleet.membersOf(1);
  fleet.converge("Failed");
  fleet.now += MINUTE;
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["BatchFailed", "RollbackStarted"]);
  assert.equal(fleet.status!.phase, "RollingBack");
  assert.deepEqual(fleet.targeted(NEW), []);
  assert.match(fleet.status!.message, /Rolling back to revision 1: 1 device still run revision 2/);
  assert.match(fleet.status!.failure!.message, new RegExp(`${canary}: image pull failed`));
  const degraded = fleet.status!.conditions.find((c) => c.type === "Degraded");
  assert.equal(degraded?.status, "True");

  fleet.now += 2 * MINUTE;
  fleet.report(canary!, STABLE, "Succeeded");
  fleet.decide();
  assert.equal(fleet.status!.phase, "RolledBack");
  assert.deepEqual(fleet.eventTypes(), ["RolledBack"]);
  assert.match(fleet.last.events[0]!.message, /back on revision 1 \(2m after the failure\)/);
  for (const [id, given] of fleet.given) {
    assert.deepEqual(given, id === canary ? [2, 1] : [1], id);
  }
});

Deno.test("decideRollout() with onFailure Pause stops Degraded; retry re-runs only the failed devices", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 3 }], onFailure: "Pause" }),
    devices(6),
  );
  fleet.decide();
  const [bad, ...good] = fleet.membersOf(1);
  fleet.report(bad!, NEW, "Failed", "healthcheck failed 3 times");
  for (const id of good) fleet.report(id, NEW, "Succeeded");
  fleet.decide();
  assert.equal(fleet.status!.phase, "Degraded");
  assert.match(fleet.status!.message, /run fleet rollout retry/);
  assert.ok(fleet.targeted(NEW).includes(bad!), "Pause keeps the failed device where it is");
  assert.equal(fleet.last.wakeAt, undefined);

  fleet.now += MINUTE;
  fleet.decide([{ verb: "retry", by: "mia" }]);
  assert.deepEqual(fleet.last.retry, [bad]);
  assert.deepEqual(fleet.eventTypes(), ["Retried"]);
  assert.equal(fleet.status!.phase, "Progressing");
  assert.equal(fleet.status!.batches[0]!.failed, 0, "a failure reported before the retry is old");
  fleet.now += MINUTE;
  fleet.report(bad!, NEW, "Succeeded");
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 2);
});

Deno.test("decideRollout() refuses actions that do not fit the phase, saying why", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(3));
  fleet.decide([{ verb: "retry", by: "mia" }, { verb: "resume", by: "mia" }]);
  assert.deepEqual(fleet.eventTypes(), [
    "RolloutStarted",
    "ActionRefused",
    "ActionRefused",
    "BatchStarted",
  ]);
  assert.match(fleet.last.events[1]!.message, /retry by mia refused: .*rollout is Progressing/);
  assert.match(fleet.last.events[1]!.reason ?? "", /^.*rollout is Progressing/);
  assert.doesNotMatch(fleet.last.events[1]!.reason ?? "", /refused/, "the reason alone");
  assert.match(fleet.last.events[2]!.message, /not paused/);
  fleet.decide([{ verb: "approve", by: "mia" }]);
  assert.match(fleet.last.events[0]!.message, /no batch waits for approval/);
  fleet.converge();
  fleet.decide();
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.phase, "Complete");
  fleet.decide([{ verb: "pause", by: "mia" }]);
  assert.match(fleet.last.events[0]!.message, /Complete: there is nothing to pause/);
});

Deno.test("decideRollout() waits for approval of a Manual batch and starts it when approved", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 1 }, { limit: "50%", approval: "Manual" }] }),
    devices(10),
  );
  fleet.decide();
  fleet.converge();
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["BatchSucceeded", "WaitingForApproval"]);
  assert.equal(fleet.status!.currentBatch, 2);
  assert.equal(fleet.targeted(NEW).length, 1, "batch 2 devices keep stable until approved");
  assert.match(
    fleet.status!.message,
    /Batch 2 of 3 waits for approval before 4 devices get revision 2: run fleet rollout approve$/,
  );
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), [], "waiting is announced once");
  // Found end to end: a second decision while waiting gave the canary the stable revision back.
  assert.equal(fleet.targeted(NEW).length, 1, "the canary keeps the revision while batch 2 waits");
  assert.equal(fleet.status!.batches[0]!.healthy, 1);
  fleet.decide([{ verb: "pause", by: "ops" }]);
  fleet.decide();
  assert.equal(fleet.targeted(NEW).length, 1, "and while the rollout is paused there");
  assert.match(
    fleet.status!.message,
    /^Paused by ops at .*: Batch 2 of 3 waits for approval .*; run fleet rollout resume to continue$/,
  );
  fleet.decide([{ verb: "resume", by: "ops" }]);

  fleet.now += 30 * MINUTE;
  fleet.decide([{ verb: "approve", by: "mia" }]);
  assert.deepEqual(fleet.eventTypes(), ["Approved", "BatchStarted"]);
  assert.equal(fleet.status!.batches[1]!.approvedBy, "mia");
  assert.equal(fleet.targeted(NEW).length, 5);
  fleet.decide([{ verb: "approve", by: "mia", batch: 3 }]);
  assert.match(fleet.last.events[0]!.message, /batch 3 starts by itself/);
});

Deno.test("decideRollout() takes an approval given before the batch is reached", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 1 }, { limit: "50%", approval: "Manual" }] }),
    devices(10),
  );
  fleet.decide([{ verb: "approve", by: "ops", batch: 2 }]);
  fleet.converge();
  fleet.decide();
  assert.deepEqual(fleet.eventTypes(), ["BatchSucceeded", "BatchStarted"]);
  assert.equal(fleet.status!.currentBatch, 2);
});

Deno.test("decideRollout() paused: the current batch finishes, the next waits for resume", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 2 }] }), devices(6));
  fleet.decide();
  fleet.decide([{ verb: "pause", by: "mia" }]);
  assert.equal(fleet.status!.phase, "Paused");
  assert.equal(fleet.status!.pausedBy, "mia");
  assert.equal(fleet.status!.conditions.find((c) => c.type === "Paused")?.status, "True");
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 2);
  assert.equal(fleet.status!.batches[1]!.startedAt, undefined);
  assert.equal(fleet.targeted(NEW).length, 2);
  assert.match(
    fleet.status!.message,
    /^Paused by mia at .*: Batch 2 of 2 has not started; run fleet rollout resume/,
  );
  fleet.decide([{ verb: "resume", by: "mia" }]);
  assert.deepEqual(fleet.eventTypes(), ["Resumed", "BatchStarted"]);
  assert.equal(fleet.targeted(NEW).length, 6);
});

Deno.test("decideRollout() keeps each group within its disruption budget", () => {
  const all = devices(8, (i) => ({ site: i % 2 === 0 ? "north" : "south" }));
  const fleet = new Fleet(
    policyOf({
      batches: [{ limit: "100%" }],
      disruptionBudget: { groupBy: ["site"], maxUnavailable: 1 },
      deviceTimeout: "5m",
    }),
    all,
  );
  const site = new Map(all.map((d) => [d.id, d.labels.site]));
  const updating = () => {
    const per = new Map<string, number>();
    for (const id of fleet.targeted(NEW)) {
      const report = fleet.observed.get(id)!.report;
      if (report?.revision === NEW.hash && report.phase === "Succeeded") continue;
      per.set(site.get(id)!, (per.get(site.get(id)!) ?? 0) + 1);
    }
    return per;
  };
  fleet.decide();
  assert.deepEqual(updating(), new Map([["north", 1], ["south", 1]]));
  assert.match(
    fleet.status!.message,
    /6 wait for the disruption budget \(at most 1 updating at once in each group of site\)/,
  );
  for (let round = 0; round < 3; round++) {
    // Each round takes longer than deviceTimeout in total, but no device waits that long once
    // it got its slot.
    fleet.now += 4 * MINUTE;
    fleet.converge();
    fleet.decide();
    assert.equal(fleet.status!.phase, "Progressing", `round ${round}`);
    assert.ok([...updating().values()].every((n) => n <= 1), `round ${round}`);
  }
  fleet.now += 4 * MINUTE;
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.phase, "Complete");
});

Deno.test("decideRollout() gives an offline device the revision without spending budget", () => {
  const all = devices(4, () => ({ site: "north" }));
  const fleet = new Fleet(
    policyOf({
      batches: [{ limit: "100%" }],
      disruptionBudget: { groupBy: ["site"], maxUnavailable: 1 },
    }),
    all,
  );
  const [away] = fleet.membersOf(1);
  fleet.set(away!, { online: false });
  fleet.decide();
  assert.equal(fleet.targeted(NEW).length, 2, "the offline device plus one online device");
  assert.ok(fleet.targeted(NEW).includes(away!));
});

Deno.test("decideRollout() gives devices that join mid-rollout the stable revision, then the new one once complete", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(4));
  fleet.decide();
  fleet.observed.set("late-1", { online: true });
  fleet.decide();
  assert.deepEqual(fleet.last.targets.get("late-1"), STABLE);
  assert.equal(fleet.status!.joined, 1);
  fleet.converge();
  fleet.decide();
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.phase, "Complete");
  assert.deepEqual(fleet.last.targets.get("late-1"), NEW);
});

Deno.test("decideRollout() counts a device that left the selector nowhere", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 2 }] }), devices(4));
  fleet.decide();
  const [gone] = fleet.membersOf(1);
  fleet.observed.delete(gone!);
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.batches[0]!.selected, 1);
  assert.equal(fleet.last.targets.has(gone!), false);
  assert.equal(fleet.status!.currentBatch, 2);
});

Deno.test("decideRollout() with a newer spec supersedes the rollout; devices already on the newest count as done", () => {
  const fleet = new Fleet(
    policyOf({ batches: [{ limit: 1 }, { limit: "50%" }], bake: "1h" }),
    devices(10),
  );
  fleet.decide();
  fleet.converge();
  fleet.decide();
  fleet.now += 2 * 60 * MINUTE;
  fleet.decide();
  assert.equal(fleet.status!.currentBatch, 2);

  // Revision 3 arrives; the operator freezes the population again. The canary already runs
  // revision 3's workload (say, an undo made it) so batch 1 needs no bake.
  fleet.revision = NEWER;
  const [canary] = fleet.membersOf(1);
  fleet.report(canary!, NEWER, "Succeeded");
  fleet.now += MINUTE;
  fleet.decide();
  assert.deepEqual(fleet.eventTypes().slice(0, 2), ["Superseded", "RolloutStarted"]);
  assert.match(
    fleet.last.events[0]!.message,
    /revision 3 supersedes revision 2, which was Progressing at batch 2 of 3/,
  );
  assert.deepEqual(fleet.status!.stable, STABLE, "revision 2 never completed");
  assert.equal(fleet.status!.currentBatch, 2, "batch 1 is already on revision 3: no bake");
  assert.equal(fleet.targeted(NEWER).length, 5);
  assert.ok(fleet.targeted(NEW).length === 0, "nobody stays on the superseded revision");
});

Deno.test("decideRollout() after a completed rollout starts the next one from the completed revision", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(3));
  fleet.decide();
  fleet.converge();
  fleet.decide();
  fleet.converge();
  fleet.decide();
  assert.equal(fleet.status!.phase, "Complete");
  fleet.revision = NEWER;
  fleet.decide();
  assert.deepEqual(fleet.status!.stable, NEW);
  assert.deepEqual(fleet.eventTypes(), ["RolloutStarted", "BatchStarted"], "no supersede");
  assert.equal(fleet.targeted(NEW).length, 2);
});

Deno.test("decideRollout() of a first revision gives unreached devices nothing, and a rollback removes it", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(3), null);
  fleet.decide();
  assert.equal(fleet.targeted(null).length, 2);
  assert.match(fleet.last.events[0]!.message, /stable revision none/);
  fleet.converge("Failed");
  fleet.decide();
  assert.equal(fleet.status!.phase, "RollingBack");
  assert.equal(fleet.targeted(null).length, 3);
  const [canary] = fleet.membersOf(1);
  fleet.observed.set(canary!, { online: true }); // its containers are gone: no report
  fleet.decide();
  assert.equal(fleet.status!.phase, "RolledBack");
  assert.match(fleet.status!.message, /Rolled back to no revision/);
});

Deno.test("decideRollout() skips empty batches and passes a batch whose devices already ran the revision without baking", () => {
  const fleet = new Fleet(
    policyOf({
      batches: [{ limit: 1, selector: { matchLabels: { ring: "canary" } } }, { limit: "50%" }],
      bake: "1h",
    }),
    devices(4),
  );
  // An undo to the stable workload: every device already runs it.
  fleet.revision = { number: 4, hash: STABLE.hash };
  fleet.now += MINUTE;
  fleet.decide();
  assert.equal(fleet.status!.phase, "Complete");
  assert.deepEqual(fleet.status!.batches.map((b) => b.selected), [0, 2, 2]);
});

Deno.test("decideRollout() status round-trips through RolloutStatus, with conditions that move only on change", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(3));
  fleet.decide();
  const progressing = fleet.status!.conditions.find((c) => c.type === "Progressing")!;
  assert.equal(progressing.status, "True");
  fleet.now += MINUTE;
  fleet.decide();
  assert.equal(
    fleet.status!.conditions.find((c) => c.type === "Progressing")!.lastTransitionTime,
    progressing.lastTransitionTime,
  );
  fleet.decide([{ verb: "pause", by: "mia" }]);
  const paused = fleet.status!.conditions.find((c) => c.type === "Paused")!;
  assert.equal(paused.lastTransitionTime, new Date(fleet.now).toISOString());
  assert.equal(paused.reason, "Paused");
});

Deno.test("decideRollout() keeps a person's pause when a newer spec supersedes the paused rollout", () => {
  const fleet = new Fleet(policyOf({ batches: [{ limit: 1 }] }), devices(3));
  fleet.decide();
  fleet.decide([{ verb: "pause", by: "mia" }]);
  fleet.revision = NEWER;
  fleet.decide();
  assert.equal(fleet.status!.phase, "Paused");
  assert.equal(fleet.status!.pausedBy, "mia");
  assert.deepEqual(fleet.targeted(NEWER), [], "batch 1 does not start while paused");
  fleet.decide([{ verb: "resume", by: "mia" }]);
  assert.equal(fleet.targeted(NEWER).length, 1);
});

Deno.test("decideRollout() after an operator restart mid-rollout (population frozen again, status read back) decides exactly as without it", () => {
  const all = devices(40, (i) => ({ site: `s${i % 4}` }));
  const policy = policyOf({
    batches: [{ limit: 2 }, { limit: "25%", approval: "Manual" }, { limit: "60%" }],
    bake: "5m",
    disruptionBudget: { groupBy: ["site"], maxUnavailable: 2 },
  });
  const steady = new Fleet(policy, all);
  const restarted = new Fleet(policy, all);
  const actions: RolloutAction[][] = [[], [], [{ verb: "approve", by: "mia" }]];
  let budgetWaits = 0;
  for (let step = 0; step < 30 && steady.status?.phase !== "Complete"; step++) {
    // The restarted operator re-reads its inputs: a new array, built from another order.
    restarted.population = freezePopulation(REF, [...all].reverse());
    const a = steady.decide(actions[step] ?? []);
    const b = restarted.decide(actions[step] ?? []);
    assert.deepEqual(b.targets, a.targets, `step ${step}`);
    assert.deepEqual(b.status, a.status, `step ${step}`);
    assert.deepEqual(b.events, a.events, `step ${step}`);
    if (/disruption budget/.test(a.status.message)) budgetWaits++;
    for (const fleet of [steady, restarted]) {
      fleet.converge();
      fleet.now += 3 * MINUTE;
    }
  }
  assert.equal(steady.status!.phase, "Complete");
  assert.ok(budgetWaits > 0, "the budget held devices back on the way");
});
