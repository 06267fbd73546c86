/**
 * The progressive rollout controller (issue 15, ADR 0006): for each deployment whose
 * `spec.rollout.strategy` is Progressive it freezes the population when a revision's rollout
 * starts (stored, so a restarted operator resumes the same batches), feeds core's
 * `decideRollout` with the devices the deployment matches, their reachability on the control
 * plane's clock and their reports, and people's actions, then hands the outcome on: which
 * revision each device must hold goes to the targeting controller (`view.rolloutWishes`), the
 * status to the status controller (`view.rollouts`). It decides again on every change of its
 * inputs and at the moment the decision asks for (a bake ends, a device times out).
 * @module
 */
import {
  type BackoffPolicy,
  type Clock,
  decideRollout,
  type DeploymentRef,
  type DeploymentState,
  type DesiredState,
  type DeviceObservation,
  type DeviceWish,
  freezePopulation,
  isStale,
  progressivePolicy,
  type Revision,
  type RevisionRef,
  type RolloutDevice,
  rolloutReportOf,
  type RolloutStatus,
  type StoredDeployment,
  type Timer,
} from "../core/mod.ts";
import { revisionHash } from "../core/revisions.ts";
import type { Logger } from "../adapters/logger.ts";
import { DeploymentMap } from "./deployment_map.ts";
import type { FleetView } from "./fleet_view.ts";
import type { InitialRead } from "./initial_read.ts";
import type { PopulationStore } from "./population_store.ts";
import { RetryQueue } from "./retry_queue.ts";
import type { RolloutActionEvent } from "./rollout_action_feed.ts";

/**
 * What makes a report new: the device wrote it again. A device that fails again after a
 * retry reports the same revision and phase, and that failure comes after the retry.
 */
function reportKey(state: DeploymentState): string {
  return `${state.revision ?? ""}/${state.phase}/${state.lastEventAt}/${state.lastError}`;
}

/** Changes arrive in bursts (a batch's reports); one decision after this pause takes them all. */
const DECIDE_DELAY_MS = 20;
/**
 * A pass for reports waits at least this many times the computing time of the pass before it:
 * a decision is O(devices) (0.4–0.7 s at 100,000) and reports arrive all along a batch, so
 * without the spacing the operator decides back to back and the batch's desired-state writes starve
 * (bench:rollout at 100,000 devices in 5 batches: 198 s and 182 s of operator CPU unspaced,
 * 40 s and 31 s spaced). Not spaced: a failure, reports that may be the last the current batch
 * waits for (the next batch starts ~1 s after its last report), a person's action, a bake's end
 * or a device's timeout.
 */
const DECIDE_SPACING = 2;

/** Options of {@link RolloutController}. */
export interface RolloutControllerOptions {
  view: FleetView;
  populations: PopulationStore;
  /** The kept revisions of a deployment, oldest first; undefined until they were read. */
  revisionsOf: (ref: DeploymentRef) => readonly Revision[] | undefined;
  initialRead: InitialRead;
  clock: Clock;
  log: Logger;
  staleAfterMs: number;
  /** The devices' desired state must be compared with the rollout's wishes again. */
  wishesChanged: (ref: DeploymentRef) => void;
  /** The rollout's status changed: the deployment's status must be written. */
  statusChanged: (ref: DeploymentRef) => void;
  /** @default DEFAULT_BACKOFF */
  retry?: BackoffPolicy;
}

/** What the controller keeps of one deployment's rollout between decisions. */
interface Rollout {
  /** The revision whose population this is, and the population, in the rollout's order. */
  populationOf?: { revision: number; devices: RolloutDevice[] };
  /** Actions not yet applied, in stream order. */
  actions: RolloutActionEvent[];
  /** Devices retried in the rollout of `revision`, and how often. */
  retried?: { revision: number; counts: Map<string, number> };
  wake?: Timer;
}

export class RolloutController {
  readonly #o: RolloutControllerOptions;
  readonly #rollouts = new DeploymentMap<Rollout>();
  readonly #dirty = new DeploymentMap<true>();
  readonly #retries: RetryQueue;
  /** deviceId → when the control plane saw it become reachable (epoch ms). */
  readonly #onlineSince = new Map<string, number>();
  /** deployment → deviceId → the report's revision and phase, and when it was received. */
  readonly #received = new DeploymentMap<Map<string, { key: string; at: number }>>();
  /** Every action kept in the stream was read: none is left to apply before deciding. */
  #actionsReady = false;
  #timer: Timer | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** Milliseconds the last pass computed, awaits left out. */
  #computedMs = 0;
  /** The monotonic time #timer is due. */
  #dueAt = 0;
  /** A change marked during the pass in flight must not wait for the spacing. */
  #againSoon = false;
  /** Per deployment, reports with a new verdict since its last decision read them. */
  readonly #fresh = new DeploymentMap<number>();

  constructor(options: RolloutControllerOptions) {
    this.#o = options;
    this.#retries = new RetryQueue({
      clock: options.clock,
      onDue: (ref) => this.#mark(ref, true),
      ...(options.retry ? { policy: options.retry } : {}),
    });
  }

  /** Whether `ref` is rolled out progressively now. */
  #progressive(ref: DeploymentRef): StoredDeployment | undefined {
    const deployment = this.#o.view.deployments.get(ref);
    return deployment?.spec.rollout.strategy === "Progressive" ? deployment : undefined;
  }

  /**
   * Something a decision of `ref` reads changed (its targets, their reachability, its revisions):
   * decide again, spaced as for reports. Several controllers mark on every change of theirs.
   */
  mark(ref: DeploymentRef): void {
    this.#mark(ref, false);
  }

  /** `soon`: within DECIDE_DELAY_MS; otherwise spaced by DECIDE_SPACING. */
  #mark(ref: DeploymentRef, soon: boolean): void {
    if (this.#stopped) return;
    if (!this.#progressive(ref) && !this.#o.view.rollouts.has(ref)) return;
    this.#dirty.set(ref, true);
    this.#schedule(soon);
  }

  /** A device reported on `ref`: remembers when the control plane received a new verdict. */
  reported(ref: DeploymentRef, deviceId: string): void {
    // Only progressive deployments need it: kept for every report it would grow with the fleet.
    if (!this.#progressive(ref)) return;
    const state = this.#o.view.states.get(ref)?.get(deviceId);
    let received = this.#received.get(ref);
    if (state === undefined) {
      received?.delete(deviceId);
    } else {
      const key = reportKey(state);
      if (received === undefined) this.#received.set(ref, received = new Map());
      if (received.get(deviceId)?.key !== key) {
        received.set(deviceId, { key, at: this.#o.clock.now() });
        this.#fresh.set(ref, (this.#fresh.get(ref) ?? 0) + 1);
      }
    }
    this.#mark(ref, state?.phase === "Failed" || this.#mayEndBatch(ref));
  }

  /**
   * Whether the reports since `ref`'s last decision may be all its current batch waits for: as
   * many as it has devices neither healthy, failed, timed out nor offline.
   */
  #mayEndBatch(ref: DeploymentRef): boolean {
    const status = this.#o.view.rollouts.get(ref);
    const batch = status?.batches[status.currentBatch - 1];
    if (status?.phase !== "Progressing" || batch === undefined) return false;
    const waiting = batch.selected - batch.healthy - batch.failed - batch.timedOut - batch.offline;
    return (this.#fresh.get(ref) ?? 0) >= waiting;
  }

  /** When the control plane received the device's report on `ref`; unknown: from `now` on. */
  #receivedAt(ref: DeploymentRef, deviceId: string, now: number): number {
    let received = this.#received.get(ref);
    if (received === undefined) this.#received.set(ref, received = new Map());
    let entry = received.get(deviceId);
    if (entry === undefined) {
      const state = this.#o.view.states.get(ref)?.get(deviceId);
      entry = { key: state === undefined ? "" : reportKey(state), at: now };
      received.set(deviceId, entry);
    }
    return entry.at;
  }

  /** A person's action from the stream; `{ ready }` once every kept one was read. */
  onAction(event: RolloutActionEvent | { ready: true }): void {
    if ("ready" in event) {
      this.#actionsReady = true;
      for (const ref of this.#rollouts.keys()) this.#mark(ref, true);
      return;
    }
    const applied = this.#statusOf(event.ref)?.lastAction;
    // Taken already: stored before the decision that took it. A stream re-created after the
    // broker lost it numbers from 1 again, but its actions are stored after that decision.
    if (
      applied !== undefined && event.seq <= applied.seq && event.at <= Date.parse(applied.at)
    ) return;
    this.#rolloutOf(event.ref).actions.push(event);
    this.#mark(event.ref, true);
  }

  /** Every deployment, once the operator has read its inputs. */
  start(): void {
    for (const ref of this.#o.view.deployments.keys()) this.#mark(ref, true);
    for (const ref of this.#o.view.rollouts.keys()) this.#mark(ref, true);
  }

  stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    for (const rollout of this.#rollouts.values()) rollout.wake?.cancel();
    this.#retries.clear();
    return this.#running ?? Promise.resolve();
  }

  #rolloutOf(ref: DeploymentRef): Rollout {
    let rollout = this.#rollouts.get(ref);
    if (rollout === undefined) this.#rollouts.set(ref, rollout = { actions: [] });
    return rollout;
  }

  #statusOf(ref: DeploymentRef): RolloutStatus | undefined {
    return this.#o.view.rollouts.get(ref) ?? this.#o.view.statuses.get(ref)?.rollout;
  }

  #schedule(soon: boolean): void {
    if (!this.#o.initialRead.complete) return;
    if (this.#running) {
      this.#again = true;
      this.#againSoon ||= soon;
      return;
    }
    const delayMs = soon
      ? DECIDE_DELAY_MS
      : Math.max(DECIDE_DELAY_MS, this.#computedMs * DECIDE_SPACING);
    const dueAt = this.#o.clock.monotonic() + delayMs;
    if (this.#timer !== undefined) {
      if (this.#dueAt <= dueAt) return;
      this.#timer.cancel();
    }
    this.#dueAt = dueAt;
    this.#timer = this.#o.clock.timer(delayMs, () => {
      this.#timer = undefined;
      this.#running = this.#pass().finally(() => {
        this.#running = undefined;
        if (this.#again || this.#dirty.size > 0) {
          const soon = this.#againSoon;
          this.#again = this.#againSoon = false;
          this.#schedule(soon);
        }
      });
    });
  }

  async #pass(): Promise<void> {
    this.#computedMs = 0;
    for (const ref of [...this.#dirty.keys()]) {
      this.#dirty.delete(ref);
      if (this.#stopped) return;
      if (this.#retries.waiting(ref)) continue;
      try {
        await this.#decide(ref);
        this.#retries.forget(ref);
      } catch (error) {
        const { delayMs } = this.#retries.failed(ref);
        this.#o.log.warn(
          `Could not advance the rollout of ${ref.namespace}/${ref.name}: ` +
            `${(error as Error).message}; retrying in ${Math.round(delayMs)} ms`,
        );
      }
    }
  }

  async #decide(ref: DeploymentRef): Promise<void> {
    const { view, log } = this.#o;
    const deployment = this.#progressive(ref);
    if (deployment === undefined) {
      // Deleted, or Immediate now: every device gets the spec as it is.
      this.#forget(ref);
      return;
    }
    const policy = progressivePolicy(deployment.spec.rollout)!;
    const history = this.#o.revisionsOf(ref);
    const hash = revisionHash(deployment.spec.score);
    const current = history?.find((r) => r.hash === hash);
    // Until the spec's revision is recorded (the revision controller marks us) nothing moves.
    if (history === undefined || current === undefined || !this.#actionsReady) return;
    const revision: RevisionRef = { number: current.number, hash };
    const previous = this.#statusOf(ref);
    const rollout = this.#rolloutOf(ref);
    const targets = view.targets.get(ref) ?? new Set<string>();
    if (rollout.populationOf?.revision !== revision.number) {
      const stored = await this.#o.populations.load(ref);
      if (stored?.revision === revision.number && previous?.revision.number === revision.number) {
        rollout.populationOf = stored;
      } else {
        const devices = [...targets].map((id) => ({ id, labels: view.devices.get(id) ?? {} }));
        const frozen = freezePopulation(ref, devices);
        await this.#o.populations.save(ref, revision.number, frozen);
        rollout.populationOf = { revision: revision.number, devices: frozen };
      }
    }
    const computing = this.#o.clock.monotonic();
    this.#fresh.delete(ref);
    const now = this.#o.clock.now();
    const actions = rollout.actions.splice(0);
    const decision = decideRollout({
      policy,
      revision,
      population: rollout.populationOf.devices,
      devices: this.#observe(ref, targets, now),
      ...(previous === undefined ? {} : { status: previous }),
      initialStable: previous === undefined ? this.#initialStable(ref, history) : null,
      actions: actions.map((a) => a.action),
      now,
    });
    const status = decision.status;
    const last = actions.at(-1);
    if (last !== undefined) {
      const refused = decision.events.filter((e) => e.by !== undefined).at(-1);
      status.lastAction = {
        seq: last.seq,
        verb: last.action.verb,
        by: last.action.by,
        at: new Date(now).toISOString(),
        ...(refused?.type === "ActionRefused"
          ? { refused: refused.reason ?? refused.message }
          : {}),
      };
    } else if (previous?.lastAction !== undefined) status.lastAction = previous.lastAction;
    for (const event of decision.events) {
      const line = `Deployment ${ref.namespace}/${ref.name}: ${event.message}`;
      if (event.type === "BatchFailed" || event.type === "RollbackStarted") log.warn(line);
      else log.info(line);
    }
    view.rollouts.set(ref, status);
    this.#o.statusChanged(ref);
    const retried = this.#retriesOf(ref, status.revision.number);
    for (const id of decision.retry) {
      const current = view.desired.get(ref)?.get(id)?.retry ?? 0;
      retried.set(id, Math.max(retried.get(id) ?? 0, current) + 1);
    }
    if (this.#setWishes(ref, deployment, decision.targets, history, retried)) {
      this.#o.wishesChanged(ref);
    }
    rollout.wake?.cancel();
    delete rollout.wake;
    if (decision.wakeAt !== undefined) {
      rollout.wake = this.#o.clock.timer(
        Math.max(0, decision.wakeAt - now),
        () => this.#mark(ref, true),
      );
    }
    this.#computedMs += this.#o.clock.monotonic() - computing;
  }

  /** The matched devices, each with its reachability and last report. */
  #observe(ref: DeploymentRef, targets: ReadonlySet<string>, now: number) {
    const { view, staleAfterMs } = this.#o;
    const states = view.states.get(ref);
    const devices = new Map<string, DeviceObservation>();
    for (const id of targets) {
      const online = !isStale(view.lastSeen.get(id), now, staleAfterMs);
      if (!online) this.#onlineSince.delete(id);
      else if (!this.#onlineSince.has(id)) this.#onlineSince.set(id, now);
      const state = states?.get(id);
      const report = state ? rolloutReportOf(state, this.#receivedAt(ref, id, now)) : undefined;
      const observation: DeviceObservation = { online };
      const since = this.#onlineSince.get(id);
      if (online && since !== undefined) observation.onlineSince = since;
      if (report !== undefined) observation.report = report;
      devices.set(id, observation);
    }
    return devices;
  }

  /**
   * The revision devices already run when a deployment's first progressive rollout starts: the
   * kept revision most devices hold in desired state (a deployment that was Immediate until
   * now), or none (a new deployment).
   */
  #initialStable(ref: DeploymentRef, history: readonly Revision[]): RevisionRef | null {
    const counts = new Map<string, number>();
    for (const value of this.#o.view.desired.get(ref)?.values() ?? []) {
      const hash = revisionHash(value.score);
      counts.set(hash, (counts.get(hash) ?? 0) + 1);
    }
    let best: RevisionRef | null = null;
    let most = 0;
    for (const r of history) {
      const n = counts.get(r.hash) ?? 0;
      if (n > most) [best, most] = [{ number: r.number, hash: r.hash }, n];
    }
    return best;
  }

  /**
   * Turns the decision's revision per device into desired-state values (one object per
   * revision); true when some device's wish changed.
   */
  #setWishes(
    ref: DeploymentRef,
    deployment: StoredDeployment,
    targets: ReadonlyMap<string, RevisionRef | null>,
    history: readonly Revision[],
    retried: ReadonlyMap<string, number>,
  ): boolean {
    const values = new Map<number, DesiredState | undefined>();
    const valueOf = (revision: RevisionRef | null): DesiredState | null | undefined => {
      if (revision === null) return null;
      if (values.has(revision.number)) return values.get(revision.number);
      // Going back to a workload renumbers it (core/revisions.ts): the hash finds it.
      const kept = history.find((r) => r.number === revision.number) ??
        history.findLast((r) => r.hash === revision.hash);
      const value: DesiredState | undefined = kept === undefined ? undefined : {
        namespace: ref.namespace,
        name: ref.name,
        // The spec's own revision carries its generation (so the aggregate counts it);
        // an older one the generation that made it (so devices on it are not rewritten).
        generation: kept.hash === revisionHash(deployment.spec.score)
          ? deployment.metadata.generation
          : kept.generation,
        score: kept.score,
        ...(deployment.spec.minReadySeconds === undefined
          ? {}
          : { minReadySeconds: deployment.spec.minReadySeconds }),
      };
      if (value === undefined) {
        this.#o.log.warn(
          `Deployment ${ref.namespace}/${ref.name}: revision ${revision.number} is no longer ` +
            `kept; its devices keep what they run`,
        );
      }
      values.set(revision.number, value);
      return value;
    };
    const before = this.#o.view.rolloutWishes.get(ref);
    const wishes = new Map<string, DeviceWish>();
    let changed = before === undefined || before.size !== targets.size;
    const desired = this.#o.view.desired.get(ref);
    for (const [id, revision] of targets) {
      let value = valueOf(revision);
      // A retried device's value says so (its agent tries again at once), until a new rollout;
      // after a restart, the number is read back from what the device holds.
      const current = desired?.get(id);
      const retry = retried.get(id) ??
        (current?.generation === value?.generation ? current?.retry : undefined);
      if (value && retry !== undefined) value = { ...value, retry };
      wishes.set(id, value);
      if (!changed) {
        const old = before!.get(id);
        changed = !before!.has(id) || (old ?? null) !== (value ?? null) && (
              !old || !value || old.generation !== value.generation ||
              old.score !== value.score || old.retry !== value.retry
            );
      }
    }
    this.#o.view.rolloutWishes.set(ref, wishes);
    return changed;
  }

  /** The devices people retried in the rollout of `revision` of `ref`, with their count. */
  #retriesOf(ref: DeploymentRef, revision: number): Map<string, number> {
    const rollout = this.#rolloutOf(ref);
    if (rollout.retried?.revision !== revision) rollout.retried = { revision, counts: new Map() };
    return rollout.retried.counts;
  }

  #forget(ref: DeploymentRef): void {
    const rollout = this.#rollouts.get(ref);
    rollout?.wake?.cancel();
    this.#rollouts.delete(ref);
    this.#received.delete(ref);
    this.#fresh.delete(ref);
    const view = this.#o.view;
    const had = view.rolloutWishes.delete(ref);
    if (view.rollouts.delete(ref)) this.#o.statusChanged(ref);
    if (had) this.#o.wishesChanged(ref);
    if (!view.deployments.has(ref)) {
      void this.#o.populations.removePopulation(ref).catch((error: unknown) => {
        this.#o.log.warn(
          `Could not forget the rollout population of ${ref.namespace}/${ref.name}: ` +
            `${(error as Error).message}`,
        );
      });
    }
  }
}
