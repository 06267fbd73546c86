/**
 * The progressive rollout controller's decision: given the population frozen when the rollout
 * started, what each device reports, which devices are online (judged on the control plane's
 * clock), the previous status, the actions people took and `now`, it says which revision each
 * device must be given, the new status and the events to record. The operator stores the
 * status and calls it again on every change and at `wakeAt`; a restarted operator that calls it
 * with the same inputs resumes exactly (the batches are recomputed from the frozen population in
 * a stable order, every moment that matters is in the status). Pure: no I/O, no clock.
 *
 * Rules, in the words of a field engineer:
 * - Batches are cumulative (see RolloutBatch.limit) and picked in an order that depends only on
 *   the deployment and the device id, so every run picks the same devices.
 * - Offline devices are neither successes nor failures: they are counted, left out of the
 *   successThreshold's denominator, keep the revision they were given and pick it up when they
 *   return. Giving an offline device the revision costs no disruption budget (it is unavailable
 *   anyway).
 * - A device fails when it reports the revision Failed, or times out when it is online and not
 *   healthy deviceTimeout after it was given the revision (counted from the later of the batch's
 *   start, the last retry, its return online and, under a disruption budget, the last time a
 *   device of its group became healthy and freed a slot).
 * - A batch passes when enough of its reachable devices are healthy (successThreshold, rounded
 *   up) and stayed so for `bake`; it fails when more devices failed than maxFailures allows or
 *   than the threshold leaves room for. Only the current batch is judged.
 * - Devices that join mid-rollout get the stable revision until the rollout completes; devices
 *   already running the new revision's workload count as done (a superseding spec, an undo).
 * - Pause stops the rollout before its next batch (the current batch's devices finish);
 *   onFailure Pause stops it Degraded until `retry` (re-runs the failed devices of the batch) or
 *   a new spec (`undo` is one); onFailure Rollback sends every device back to stable.
 * @module
 */
import { createHash } from "node:crypto";
import * as z from "zod";
import type { Labels } from "./selector.ts";
import { matchesSelector } from "./selector.ts";
import { canonicalJson } from "./spec_hash.ts";
import type { DeploymentRef } from "./keys.ts";
import type { RevisionRef } from "./revisions.ts";
import { neededHealthy, type ProgressivePolicy, resolveCount } from "./rollout_policy.ts";
import type {
  BatchCounts,
  BatchStatus,
  RolloutCondition,
  RolloutConditionType,
  RolloutPhase,
  RolloutStatus,
} from "./rollout_status.ts";

/** A device of the population, with the labels it had when the rollout started. */
export interface RolloutDevice {
  id: string;
  labels: Readonly<Labels>;
}

export const ReportPhases = ["Progressing", "Succeeded", "Failed"] as const;
/** Succeeded: runs the revision, healthy for minReadySeconds. Failed: cannot (with the reason). */
export type ReportPhase = typeof ReportPhases[number];

/** What a device last reported for the deployment. */
export interface DeviceReport {
  /** The hash of the revision it runs or is moving to. */
  revision: string;
  phase: ReportPhase;
  /** Why it failed, short and readable. */
  message?: string;
  /** When the control plane received the report (epoch ms); never the device's clock. */
  at: number;
}

/** A device the deployment matches now. */
export interface DeviceObservation {
  /** Reachable, judged on the control plane's clock (core/liveness.ts). */
  online: boolean;
  /** When the control plane last saw it become reachable (epoch ms), if known. */
  onlineSince?: number;
  report?: DeviceReport;
}

export const RolloutActionVerbs = ["pause", "resume", "approve", "retry"] as const;
export type RolloutActionVerb = typeof RolloutActionVerbs[number];

/** What a person asked of the rollout (`fleet rollout pause|resume|approve|retry`). */
export const RolloutAction = z.object({
  verb: z.enum(RolloutActionVerbs),
  /** The principal who asked, for the status and the audit. */
  by: z.string().min(1),
  /** approve: the 1-based batch to approve; by default the next Manual batch not yet started. */
  batch: z.number().int().positive().optional(),
});
export type RolloutAction = z.infer<typeof RolloutAction>;

/** What {@link decideRollout} is given. */
export interface RolloutInput {
  policy: ProgressivePolicy;
  /** The spec's revision (the newest). */
  revision: RevisionRef;
  /**
   * Frozen when this revision's rollout started, in {@link freezePopulation}'s order. Never
   * mutated: pass the same array on every call of a rollout, its batches are computed once.
   */
  population: readonly RolloutDevice[];
  /** Every device the deployment matches now; population devices absent here have left. */
  devices: ReadonlyMap<string, DeviceObservation>;
  /** The status written last time; undefined for the deployment's first rollout. */
  status?: RolloutStatus;
  /** When there is no status: the revision every device already runs, if any. */
  initialStable?: RevisionRef | null;
  /** Actions taken since the last call, in order; each is applied once. */
  actions?: readonly RolloutAction[];
  /** Control-plane time, epoch ms. */
  now: number;
}

export const RolloutEventTypes = [
  "RolloutStarted",
  "Superseded",
  "BatchStarted",
  "WaitingForApproval",
  "Approved",
  "BatchSucceeded",
  "BatchFailed",
  "Paused",
  "Resumed",
  "Retried",
  "RollbackStarted",
  "RolledBack",
  "Completed",
  "ActionRefused",
] as const;
export type RolloutEventType = typeof RolloutEventTypes[number];

/** Something that happened in this decision, for the audit and `kubectl describe`. */
export interface RolloutEvent {
  type: RolloutEventType;
  message: string;
  /** 1-based batch, when the event is about one. */
  batch?: number;
  /** Who, for events caused by a person's action. */
  by?: string;
  /** ActionRefused: why, for the person who asked (the message says who and what too). */
  reason?: string;
}

/** The outcome of {@link decideRollout}. */
export interface RolloutDecision {
  status: RolloutStatus;
  /** The revision each matched device must be given; null: none yet (a first rollout). */
  targets: Map<string, RevisionRef | null>;
  events: RolloutEvent[];
  /** Devices a retry re-runs (failed or timed out in the current batch): nudge their agents. */
  retry: string[];
  /** When to decide again even if nothing changes (a bake ends, a device times out). */
  wakeAt?: number;
}

/** The order a rollout takes devices in: a hash of deployment and device id, then the id. */
export function freezePopulation(
  ref: DeploymentRef,
  devices: Iterable<RolloutDevice>,
): RolloutDevice[] {
  const keyed = [...devices].map((device) => ({
    device: { id: device.id, labels: { ...device.labels } },
    key: createHash("sha256").update(`${ref.namespace}/${ref.name}/${device.id}`).digest("hex"),
  }));
  keyed.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.device.id < b.device.id ? -1 : 1);
  return keyed.map((k) => k.device);
}

/**
 * The 0-based batch of each population device (same order): batch by batch, the devices its
 * selector matches that no earlier batch took, in population order, until the batch's
 * cumulative limit of its matching devices is reached.
 */
export function assignBatches(
  policy: ProgressivePolicy,
  population: readonly RolloutDevice[],
): number[] {
  const batchOf = new Array<number>(population.length).fill(-1);
  policy.batches.forEach((batch, b) => {
    const matching: number[] = [];
    population.forEach((device, i) => {
      if (batch.selector === undefined || matchesSelector(batch.selector, device.labels)) {
        matching.push(i);
      }
    });
    const target = resolveCount(batch.limit, matching.length, "up");
    let take = target - matching.filter((i) => batchOf[i] !== -1).length;
    for (const i of matching) {
      if (take <= 0) break;
      if (batchOf[i] === -1) {
        batchOf[i] = b;
        take--;
      }
    }
  });
  return batchOf;
}

/** What a population's batches are, per policy; the population is frozen, so it is kept. */
interface Prepared {
  index: Map<string, number>;
  /** Batch of each device, per policy batches (canonical JSON). */
  batches: Map<string, number[]>;
  /** Budget group of each device, per groupBy keys (joined). */
  groups: Map<string, string[]>;
}

const preparedPopulations = new WeakMap<readonly RolloutDevice[], Prepared>();

/**
 * The id index and batches of a frozen population, computed once per population array and
 * policy: the operator passes the same array on every decision of a rollout.
 */
function prepared(policy: ProgressivePolicy, population: readonly RolloutDevice[]) {
  let entry = preparedPopulations.get(population);
  if (entry === undefined) {
    entry = {
      index: new Map(population.map((d, i) => [d.id, i])),
      batches: new Map(),
      groups: new Map(),
    };
    preparedPopulations.set(population, entry);
  }
  const key = canonicalJson(policy.batches);
  let batchOf = entry.batches.get(key);
  if (batchOf === undefined) {
    batchOf = assignBatches(policy, population);
    entry.batches.set(key, batchOf);
  }
  const groupBy = policy.disruptionBudget?.groupBy ?? [];
  const groupKey = groupBy.join("\n");
  let groupOf = entry.groups.get(groupKey);
  if (groupOf === undefined) {
    groupOf = population.map((device) =>
      groupBy.map((key) => `${key}=${device.labels[key] ?? ""}`).join(",")
    );
    entry.groups.set(groupKey, groupOf);
  }
  return { index: entry.index, batchOf, groupOf };
}

type Verdict = "offline" | "healthy" | "failed" | "timedOut" | "updating";

interface Member {
  device: RolloutDevice;
  batch: number;
  observation: DeviceObservation;
  group: string;
  /** Given the new revision (reached, and let through by the budget); set by admit(). */
  admitted: boolean;
}

const TERMINAL: readonly RolloutPhase[] = ["RolledBack", "Complete"];

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function emptyBatch(): BatchStatus {
  return { selected: 0, updated: 0, healthy: 0, failed: 0, timedOut: 0, offline: 0 };
}

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}

function formatDuration(milliseconds: number): string {
  const s = Math.round(milliseconds / 1000);
  if (s % 86_400 === 0 && s > 0) return `${s / 86_400}d`;
  if (s % 3_600 === 0 && s > 0) return `${s / 3_600}h`;
  if (s % 60 === 0 && s > 0) return `${s / 60}m`;
  return `${s}s`;
}

/** The working state of one decision. */
class Decider {
  readonly events: RolloutEvent[] = [];
  readonly retry: string[] = [];
  wakeAt: number | undefined;
  readonly status: RolloutStatus;
  readonly members: Member[] = [];
  readonly byBatch: Member[][];
  readonly joiners: string[] = [];
  readonly groupSize = new Map<string, number>();
  /** Devices of reached batches the disruption budget holds back. */
  blocked = 0;
  /** Per group, the last time a device became healthy on the new revision (budget clock). */
  releasedAt = new Map<string, number>();
  readonly at: string;

  constructor(readonly input: RolloutInput) {
    this.at = iso(input.now);
    this.status = this.begin();
    const { index, batchOf, groupOf } = prepared(input.policy, input.population);
    this.byBatch = input.policy.batches.map(() => []);
    input.population.forEach((device, i) => {
      const observation = input.devices.get(device.id);
      if (observation === undefined) return; // left the deployment's selector
      const member = {
        device,
        batch: batchOf[i]!,
        observation,
        group: groupOf[i]!,
        admitted: false,
      };
      this.members.push(member);
      this.byBatch[member.batch]?.push(member);
      this.groupSize.set(member.group, (this.groupSize.get(member.group) ?? 0) + 1);
      const report = observation.report;
      if (report?.revision === input.revision.hash && report.phase === "Succeeded") {
        this.releasedAt.set(
          member.group,
          Math.max(this.releasedAt.get(member.group) ?? 0, report.at),
        );
      }
    });
    for (const id of input.devices.keys()) if (!index.has(id)) this.joiners.push(id);
    this.status.joined = this.joiners.length;
  }

  readonly #times = new Map<string, number>();

  /** Epoch ms of a status time; memoized, as it is asked once per device. */
  ms(text: string | undefined): number | undefined {
    if (text === undefined) return undefined;
    let value = this.#times.get(text);
    if (value === undefined) {
      value = Date.parse(text);
      this.#times.set(text, value);
    }
    return value;
  }

  get policy(): ProgressivePolicy {
    return this.input.policy;
  }

  get index(): number {
    return this.status.currentBatch - 1;
  }

  get batchCount(): number {
    return this.policy.batches.length;
  }

  /** The status to continue from: the previous one, or a new rollout of the spec's revision. */
  begin(): RolloutStatus {
    const { status: previous, revision, policy } = this.input;
    if (previous !== undefined && previous.revision.number === revision.number) {
      const batches = policy.batches.map((_, b) => ({ ...emptyBatch(), ...previous.batches[b] }));
      const currentBatch = Math.min(previous.currentBatch, batches.length);
      return { ...previous, batches, currentBatch };
    }
    const stable = previous === undefined
      ? this.input.initialStable ?? null
      : previous.phase === "Complete"
      ? previous.revision
      : previous.stable;
    if (previous !== undefined && !TERMINAL.includes(previous.phase)) {
      this.events.push({
        type: "Superseded",
        message: `revision ${revision.number} supersedes revision ${previous.revision.number}, ` +
          `which was ${previous.phase} at batch ${previous.currentBatch} of ` +
          `${previous.batches.length}`,
      });
    }
    this.events.push({
      type: "RolloutStarted",
      message: `rollout of revision ${revision.number} started over ${
        plural(this.input.population.length, "device")
      } in ${plural(policy.batches.length, "batch", "batches")}; stable revision ${
        stable?.number ?? "none"
      }`,
    });
    // A person's pause holds for the revision that supersedes the paused one.
    const paused = previous?.phase === "Paused" ? previous : undefined;
    return {
      phase: paused ? "Paused" : "Progressing",
      ...(paused?.pausedBy !== undefined ? { pausedBy: paused.pausedBy } : {}),
      ...(paused?.pausedAt !== undefined ? { pausedAt: paused.pausedAt } : {}),
      revision,
      stable,
      currentBatch: 1,
      batches: policy.batches.map(emptyBatch),
      population: this.input.population.length,
      joined: 0,
      startedAt: this.at,
      message: "",
      conditions: previous?.conditions ?? [],
    };
  }

  /** The report of `member` on the new revision, if it reports that revision. */
  onNew(member: Member): DeviceReport | undefined {
    const report = member.observation.report;
    return report?.revision === this.input.revision.hash ? report : undefined;
  }

  /**
   * Recomputes who is given the new revision: every device of a started batch, except, under a
   * disruption budget, online devices of groups whose updating devices already fill it.
   */
  admit(): void {
    for (const m of this.members) m.admitted = false;
    this.blocked = 0;
    // In batch order, then population order: the order the budget admits devices in.
    const started = this.status.batches[this.index]?.startedAt !== undefined;
    const reached = this.byBatch.slice(0, started ? this.index + 1 : this.index).flat();
    const budget = this.policy.disruptionBudget;
    if (budget === undefined) {
      for (const m of reached) m.admitted = true;
      return;
    }
    const used = new Map<string, number>();
    for (const m of reached) {
      const report = this.onNew(m);
      if (report === undefined) continue;
      m.admitted = true;
      if (m.observation.online && report.phase !== "Succeeded") {
        used.set(m.group, (used.get(m.group) ?? 0) + 1);
      }
    }
    const maxOf = new Map<string, number>();
    for (const m of reached) {
      if (m.admitted) continue;
      let max = maxOf.get(m.group);
      if (max === undefined) {
        const size = this.groupSize.get(m.group) ?? 0;
        max = Math.max(1, resolveCount(budget.maxUnavailable, size, "down"));
        maxOf.set(m.group, max);
      }
      const inUse = used.get(m.group) ?? 0;
      if (!m.observation.online) {
        m.admitted = true;
      } else if (inUse < max) {
        m.admitted = true;
        used.set(m.group, inUse + 1);
      } else {
        this.blocked++;
      }
    }
  }

  /** When `member`'s time to become healthy started, if it has been given the revision. */
  clockStart(member: Member, batch: BatchStatus): number | undefined {
    if (!member.admitted) return undefined;
    let start = Math.max(this.ms(batch.startedAt) ?? 0, this.ms(batch.retriedAt) ?? 0);
    start = Math.max(start, member.observation.onlineSince ?? 0);
    return this.policy.disruptionBudget === undefined
      ? start
      : Math.max(start, this.releasedAt.get(member.group) ?? 0);
  }

  verdict(member: Member): Verdict {
    if (!member.observation.online) return "offline";
    const batch = this.status.batches[member.batch]!;
    const report = this.onNew(member);
    if (report?.phase === "Succeeded") return "healthy";
    const retried = this.ms(batch.retriedAt);
    if (report?.phase === "Failed" && (retried === undefined || report.at >= retried)) {
      return "failed";
    }
    const start = this.clockStart(member, batch);
    if (start === undefined) return "updating";
    const deadline = start + this.policy.deviceTimeoutMs;
    if (this.input.now >= deadline) return "timedOut";
    if (member.batch === this.index) this.wake(deadline);
    return "updating";
  }

  wake(at: number): void {
    this.wakeAt = this.wakeAt === undefined ? at : Math.min(this.wakeAt, at);
  }

  count(b: number): BatchCounts {
    const counts: BatchCounts = {
      selected: 0,
      updated: 0,
      healthy: 0,
      failed: 0,
      timedOut: 0,
      offline: 0,
    };
    for (const m of this.byBatch[b] ?? []) {
      counts.selected++;
      if (this.onNew(m) !== undefined) counts.updated++;
      const verdict = this.verdict(m);
      if (verdict !== "updating") counts[verdict]++;
    }
    return counts;
  }

  /** Recounts every batch into the status. */
  recount(): void {
    this.admit();
    // In place: callers hold on to a batch's status across a recount.
    this.status.batches.forEach((batch, b) => Object.assign(batch, this.count(b)));
  }

  event(type: RolloutEventType, message: string, extra: Partial<RolloutEvent> = {}): void {
    this.events.push({ type, message, ...extra });
  }

  /** Why `action` cannot be applied now, or undefined. */
  refusal(action: RolloutAction): string | undefined {
    const phase = this.status.phase;
    const revision = `revision ${this.status.revision.number}`;
    if (TERMINAL.includes(phase) || phase === "RollingBack") {
      return `the rollout of ${revision} is ${phase}: there is nothing to ${action.verb}`;
    }
    switch (action.verb) {
      case "pause":
        return phase === "Paused" ? `the rollout is already paused` : undefined;
      case "resume":
        return phase === "Paused" ? undefined : `the rollout is ${phase}, not paused`;
      case "retry":
        return phase === "Degraded"
          ? undefined
          : `retry re-runs the failed devices of a batch the rollout stopped at, and the ` +
            `rollout is ${phase}`;
      case "approve": {
        const b = this.approvalTarget(action);
        if (b === undefined) return "no batch waits for approval";
        if (b >= this.batchCount) {
          return `batch ${b + 1} does not exist: the rollout has ${this.batchCount} batches`;
        }
        if (this.policy.batches[b]?.approval !== "Manual") {
          return `batch ${b + 1} starts by itself (approval Auto)`;
        }
        const batch = this.status.batches[b]!;
        if (batch.startedAt !== undefined) return `batch ${b + 1} has already started`;
        if (batch.approvedBy !== undefined) {
          return `batch ${b + 1} was already approved by ${batch.approvedBy}`;
        }
        return undefined;
      }
    }
  }

  /** 0-based batch an approve action is for. */
  approvalTarget(action: RolloutAction): number | undefined {
    if (action.batch !== undefined) return action.batch - 1;
    for (let b = this.index; b < this.batchCount; b++) {
      const batch = this.status.batches[b]!;
      if (
        this.policy.batches[b]?.approval === "Manual" && batch.startedAt === undefined &&
        batch.approvedBy === undefined
      ) return b;
    }
    return undefined;
  }

  apply(action: RolloutAction): void {
    const refusal = this.refusal(action);
    if (refusal !== undefined) {
      this.event("ActionRefused", `${action.verb} by ${action.by} refused: ${refusal}`, {
        by: action.by,
        reason: refusal,
      });
      return;
    }
    const by = action.by;
    switch (action.verb) {
      case "pause":
        this.status.phase = "Paused";
        this.status.pausedBy = by;
        this.status.pausedAt = this.at;
        this.event("Paused", `paused by ${by} at batch ${this.status.currentBatch}`, { by });
        return;
      case "resume":
        this.status.phase = "Progressing";
        delete this.status.pausedBy;
        delete this.status.pausedAt;
        this.event("Resumed", `resumed by ${by}`, { by });
        return;
      case "approve": {
        const b = this.approvalTarget(action)!;
        const batch = this.status.batches[b]!;
        batch.approvedBy = by;
        batch.approvedAt = this.at;
        this.event("Approved", `batch ${b + 1} approved by ${by}`, { by, batch: b + 1 });
        return;
      }
      case "retry": {
        this.recount();
        const again = (this.byBatch[this.index] ?? []).filter((m) => {
          const verdict = this.verdict(m);
          return verdict === "failed" || verdict === "timedOut";
        });
        this.retry.push(...again.map((m) => m.device.id));
        this.status.batches[this.index]!.retriedAt = this.at;
        this.status.phase = "Progressing";
        delete this.status.failure;
        this.event(
          "Retried",
          `${by} retried batch ${this.status.currentBatch}: ${
            plural(again.length, "failed device")
          } run the revision again`,
          { by, batch: this.status.currentBatch },
        );
        return;
      }
    }
  }

  /** Moves the rollout as far as the devices' reports allow. */
  advance(): void {
    let arrived = this.events.some((e) => e.type === "RolloutStarted");
    for (;;) {
      const b = this.index;
      const batch = this.status.batches[b]!;
      const label = this.batchLabel(b);
      if (batch.startedAt === undefined) {
        // Waiting to start: the batches before it keep the revision, their counts stay fresh.
        this.recount();
        const manual = this.policy.batches[b]!.approval === "Manual";
        if (manual && batch.approvedBy === undefined) {
          const waits = `${label} waits for approval before ${
            this.getting(b)
          }: run fleet rollout approve`;
          // Both hold it: the person reading must know of the pause as well.
          this.status.message = this.status.phase === "Paused" ? this.pausedMessage(waits) : waits;
          if (arrived) this.event("WaitingForApproval", this.status.message, { batch: b + 1 });
          return;
        }
        if (this.status.phase === "Paused") {
          this.status.message = this.pausedMessage(`${label} has not started`);
          return;
        }
        batch.startedAt = this.at;
        this.event(
          "BatchStarted",
          `${label} started: ${this.getting(b)}`,
          { batch: b + 1 },
        );
      }
      this.recount();
      const outcome = this.judge(b);
      if (outcome.kind === "failed") {
        this.fail(b, outcome.message);
        return;
      }
      if (outcome.kind === "waiting") {
        this.status.message = this.status.phase === "Paused"
          ? this.pausedMessage(outcome.message)
          : outcome.message;
        return;
      }
      batch.completedAt = this.at;
      this.event("BatchSucceeded", `${label} passed: ${outcome.message}`, { batch: b + 1 });
      if (b + 1 >= this.batchCount) {
        this.complete();
        return;
      }
      this.status.currentBatch++;
      arrived = true;
    }
  }

  /** "3 devices get revision 4", for batch `b`. */
  getting(b: number): string {
    const n = this.count(b).selected;
    return `${plural(n, "device")} ${
      n === 1 ? "gets" : "get"
    } revision ${this.status.revision.number}`;
  }

  batchLabel(b: number): string {
    return `Batch ${b + 1} of ${this.batchCount}`;
  }

  pausedMessage(where: string): string {
    return `Paused by ${this.status.pausedBy ?? "someone"}${
      this.status.pausedAt ? ` at ${this.status.pausedAt}` : ""
    }: ${where}; run fleet rollout resume to continue`;
  }

  /** Whether batch `b` passed, failed or waits, and why. */
  judge(b: number): { kind: "passed" | "failed" | "waiting"; message: string } {
    const batch = this.status.batches[b]!;
    const label = this.batchLabel(b);
    const revision = `revision ${this.status.revision.number}`;
    if (batch.selected === 0) return { kind: "passed", message: "no device in this batch" };
    const reachable = batch.selected - batch.offline;
    if (reachable === 0) {
      delete batch.bakeStartedAt;
      return {
        kind: "waiting",
        message: `${label}: all ${plural(batch.selected, "device")} are offline; they get ` +
          `${revision} when they return, and the batch is judged then`,
      };
    }
    const threshold = this.policy.successThresholdPercent;
    const needed = neededHealthy(reachable, threshold);
    const failures = batch.failed + batch.timedOut;
    const maxFailures = this.policy.maxFailures === undefined
      ? Infinity
      : resolveCount(this.policy.maxFailures, batch.selected, "down");
    const allowed = Math.min(maxFailures, reachable - needed);
    if (failures > allowed) {
      const rule = failures > maxFailures
        ? `more than maxFailures ${this.policy.maxFailures}`
        : `${needed} of ${reachable} reachable devices must be healthy (successThreshold ${threshold}%)`;
      return {
        kind: "failed",
        message: `${label} failed: ${failures} of ${batch.selected} devices failed (${
          this.failureDetail(b)
        }); ${rule}`,
      };
    }
    const offline = batch.offline > 0 ? `, ${batch.offline} offline` : "";
    const counts = `${batch.healthy} healthy, ${
      reachable - batch.healthy - failures
    } updating, ${failures} failed${offline}`;
    if (batch.healthy < needed) {
      if (batch.bakeStartedAt !== undefined) delete batch.bakeStartedAt;
      const budget = this.blocked > 0
        ? `; ${this.blocked} wait for the disruption budget (at most ${
          this.policy.disruptionBudget!.maxUnavailable
        } updating at once in each group of ${this.policy.disruptionBudget!.groupBy.join(", ")})`
        : "";
      return {
        kind: "waiting",
        message: `${label}: waiting for ${needed - batch.healthy} more of ${
          plural(reachable, "reachable device")
        } to report ${revision} healthy (${counts})${budget}; a device not healthy ${
          formatDuration(this.policy.deviceTimeoutMs)
        } after it got the revision counts as failed`,
      };
    }
    const started = this.ms(batch.startedAt)!;
    const alreadyThere = (this.byBatch[b] ?? []).every((m) => {
      const report = this.onNew(m);
      return !m.observation.online || (report !== undefined && report.at < started);
    });
    if (this.policy.bakeMs === 0 || alreadyThere) {
      return { kind: "passed", message: counts };
    }
    batch.bakeStartedAt ??= this.at;
    const bakeEnd = this.ms(batch.bakeStartedAt)! + this.policy.bakeMs;
    if (this.input.now >= bakeEnd) return { kind: "passed", message: `${counts}, baked` };
    this.wake(bakeEnd);
    return {
      kind: "waiting",
      message: `${label}: healthy (${counts}); baking for ${
        formatDuration(this.policy.bakeMs)
      } until ${iso(bakeEnd)} before the next batch starts, as long as the devices stay healthy`,
    };
  }

  /** The first few failed devices and why, for the failure message. */
  failureDetail(b: number): string {
    const failed = (this.byBatch[b] ?? []).flatMap((m) => {
      const verdict = this.verdict(m);
      if (verdict === "failed") {
        return [`${m.device.id}: ${this.onNew(m)?.message ?? "failed"}`];
      }
      if (verdict === "timedOut") {
        return [`${m.device.id}: not healthy after ${formatDuration(this.policy.deviceTimeoutMs)}`];
      }
      return [];
    });
    const shown = failed.slice(0, 3).join("; ");
    return failed.length > 3 ? `${shown}; and ${failed.length - 3} more` : shown;
  }

  fail(b: number, message: string): void {
    this.status.failure = { batch: b + 1, message, at: this.at };
    this.event("BatchFailed", message, { batch: b + 1 });
    const stable = this.status.stable;
    if (this.policy.onFailure === "Rollback") {
      this.status.phase = "RollingBack";
      delete this.status.pausedBy;
      delete this.status.pausedAt;
      this.event(
        "RollbackStarted",
        `every device goes back to ${stable ? `revision ${stable.number}` : "no revision"}`,
        { batch: b + 1 },
      );
      this.rollingBack();
      return;
    }
    this.status.phase = "Degraded";
    this.status.message = this.degradedMessage();
  }

  degradedMessage(): string {
    return `${this.status.failure?.message ?? "A batch failed"}. Stopped (onFailure: Pause): ` +
      `run fleet rollout retry to re-run the failed devices, or fleet rollout undo to go back`;
  }

  /** While rolling back: done once no online device reports the new revision any more. */
  rollingBack(): void {
    this.recount();
    const stable = this.status.stable;
    const back = stable ? `revision ${stable.number}` : "no revision";
    const still = this.members.filter((m) =>
      m.observation.online && this.onNew(m) !== undefined &&
      this.input.revision.hash !== stable?.hash
    ).length;
    const why = this.status.failure?.message ?? "a batch failed";
    if (still === 0) {
      if (this.status.phase === "RollingBack") {
        const took = this.input.now - (this.ms(this.status.failure?.at) ?? this.input.now);
        this.status.phase = "RolledBack";
        this.event(
          "RolledBack",
          `every reachable device is back on ${back} (${formatDuration(took)} after the failure)`,
        );
      }
      this.status.message = `Rolled back to ${back}: ${why}. Apply a fixed spec, or undo`;
      return;
    }
    this.status.message = `Rolling back to ${back}: ${
      plural(still, "device")
    } still run revision ${this.status.revision.number}. ${why}`;
  }

  complete(): void {
    this.status.phase = "Complete";
    this.status.stable = this.status.revision;
    const offline = this.members.filter((m) => !m.observation.online).length;
    const note = offline > 0 ? `; ${offline} offline get it when they return` : "";
    this.status.message = `Complete: revision ${this.status.revision.number} was given to all ${
      plural(this.members.length + this.joiners.length, "device")
    }${note}`;
    this.event("Completed", this.status.message);
  }

  targets(): Map<string, RevisionRef | null> {
    const { revision } = this.input;
    const stable = this.status.stable;
    const phase = this.status.phase;
    const out = new Map<string, RevisionRef | null>();
    for (const m of this.members) {
      const given = phase === "Complete" ||
        (phase !== "RollingBack" && phase !== "RolledBack" && m.admitted);
      out.set(m.device.id, given ? revision : stable);
    }
    for (const id of this.joiners) out.set(id, phase === "Complete" ? revision : stable);
    return out;
  }

  conditions(previous: readonly RolloutCondition[]): RolloutCondition[] {
    const phase = this.status.phase;
    const truth: Record<RolloutConditionType, boolean> = {
      Progressing: phase === "Progressing" || phase === "RollingBack",
      Paused: phase === "Paused",
      Degraded: phase === "Degraded" || phase === "RollingBack" || phase === "RolledBack",
      Complete: phase === "Complete",
    };
    return (Object.keys(truth) as RolloutConditionType[]).map((type) => {
      const status = truth[type] ? "True" : "False";
      const before = previous.find((c) => c.type === type);
      return {
        type,
        status,
        reason: phase,
        message: truth[type] ? this.status.message : "",
        lastTransitionTime: before?.status === status ? before.lastTransitionTime : this.at,
      };
    });
  }
}

/**
 * Decides the next step of a Progressive rollout. Call it whenever a report, a device's
 * reachability, the spec or an action changes, and at `wakeAt`; write the status, the targets
 * that differ from what each device has, and the events.
 */
export function decideRollout(input: RolloutInput): RolloutDecision {
  const decider = new Decider(input);
  const previousConditions = decider.status.conditions;
  for (const action of input.actions ?? []) decider.apply(action);
  const phase = decider.status.phase;
  if (phase === "Progressing" || phase === "Paused") decider.advance();
  else if (phase === "RollingBack" || phase === "RolledBack") decider.rollingBack();
  else if (phase === "Degraded") {
    decider.recount();
    decider.status.message = decider.degradedMessage();
  } else decider.recount();
  if (decider.status.phase === "Complete" || decider.status.phase === "Degraded") {
    decider.wakeAt = undefined;
  }
  decider.status.conditions = decider.conditions(previousConditions);
  const decision: RolloutDecision = {
    status: decider.status,
    targets: decider.targets(),
    events: decider.events,
    retry: decider.retry,
  };
  if (decider.wakeAt !== undefined) decision.wakeAt = decider.wakeAt;
  return decision;
}
