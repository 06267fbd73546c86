/**
 * The targeting controller: resolves each deployment's selector against the device registry
 * and writes only the difference to desired state (DESIGN.md §4), so a steady state writes
 * nothing. It also lets a deleted deployment go once its desired state is gone from every
 * device. A failed write is retried per key with backoff, never at once.
 *
 * A deployment whose host port another deployment already takes on a device is not written
 * there (`core/conflicts.ts` decides; `port_claims.ts` gathers its inputs): it is Failed
 * there in its aggregate, and the one holding the port is never touched. When the holder
 * moves off the device or off the port, the refused one is synced again and written.
 * @module
 */
import {
  type BackoffPolicy,
  type Clock,
  type DeploymentRef,
  type DesiredState,
  desiredStateOf,
  type DeviceWish,
  diffPerDevice,
  diffTargets,
  heldDeployment,
  inScope,
  type Labels,
  type PortConflict,
  type Timer,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { DeploymentSource, SourceEvent } from "./deployment_source.ts";
import type { DesiredStateEvent, DesiredStateStore } from "./desired_state_store.ts";
import { DeploymentMap, DeploymentSet } from "./deployment_map.ts";
import type { FleetView, Refusal } from "./fleet_view.ts";
import type { InitialRead } from "./initial_read.ts";
import type { OperatorStats, ReconcileObserver } from "./operator_stats.ts";
import { PortClaims, sameRef } from "./port_claims.ts";
import { RetryQueue } from "./retry_queue.ts";

/** Writes in flight at once for one deployment. */
const WRITE_BATCH = 256;
/** A change arrives as a burst of events; one sync after a pause this long takes them all. */
const SYNC_DELAY_MS = 10;

/** Options of {@link TargetingWriter}. */
export interface TargetingWriterOptions {
  view: FleetView;
  store: DesiredStateStore;
  /** Told when a deleted deployment's desired state is gone. */
  source: DeploymentSource;
  initialRead: InitialRead;
  clock: Clock;
  log: Logger;
  stats: OperatorStats;
  /** Told how long each deployment's sync took and whether a write failed. */
  reconciled?: ReconcileObserver | undefined;
  /** Called when a deployment's targets may have changed: its aggregate must be recomputed. */
  aggregateChanged: (ref: DeploymentRef) => void;
  /** Spacing of retries after failed writes. @default DEFAULT_BACKOFF */
  retry?: BackoffPolicy;
}

function named(ref: DeploymentRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Writes the desired-state diff of each deployment marked dirty; see the module doc. */
export class TargetingWriter {
  readonly #o: TargetingWriterOptions;
  readonly #view: FleetView;
  readonly #retries: RetryQueue;
  readonly #claims: PortClaims;
  /** Deployments whose desired state must be compared with their targets. */
  readonly #dirty = new DeploymentSet();
  /** Deleted deployments the source has not released yet. */
  readonly #deleting = new DeploymentSet();
  /** Deployments refused at the source before the first complete read, none accepted since. */
  readonly #refused = new DeploymentSet();
  /**
   * While desired state is read again after a restart: the keys delivered since it began,
   * so that those no longer there can be forgotten (a wiped bucket leaves no delete markers).
   */
  #reread: DeploymentMap<Set<string>> | undefined;
  #syncTimer: Timer | undefined;
  #syncing: Promise<void> | undefined;
  #resync = false;

  constructor(options: TargetingWriterOptions) {
    this.#o = options;
    this.#view = options.view;
    this.#claims = new PortClaims(options.view);
    this.#retries = new RetryQueue({
      clock: options.clock,
      onDue: (ref) => this.mark(ref),
      ...(options.retry ? { policy: options.retry } : {}),
    });
  }

  /** A deployment was added, changed, deleted or refused at the source. */
  onSource(event: Exclude<SourceEvent, { type: "ready" }>): void {
    const log = this.#o.log;
    if (event.type === "refused") {
      // What it had stays: the accepted generation, or at start what desired state holds.
      if (!this.#o.initialRead.complete && !this.#view.deployments.has(event.ref)) {
        this.#refused.add(event.ref);
      }
      return;
    }
    this.#refused.delete(event.type === "delete" ? event.ref : event.deployment.metadata);
    if (event.type === "delete") {
      this.#deleting.add(event.ref);
      if (this.#view.deployments.delete(event.ref)) {
        log.info(`Deployment ${named(event.ref)} deleted`);
      }
      this.mark(event.ref);
      return;
    }
    const { deployment } = event;
    const ref: DeploymentRef = deployment.metadata;
    const previous = this.#view.deployments.get(ref);
    this.#view.deployments.set(ref, deployment);
    const generation = deployment.metadata.generation;
    if (!previous) log.info(`Deployment ${named(ref)} added`);
    else if (previous.metadata.generation !== generation) {
      log.info(`Deployment ${named(ref)} changed`, { generation });
    }
    this.mark(ref);
  }

  /** What the desired-state store holds changed (our own writes come back this way too). */
  onDesired(event: DesiredStateEvent): void {
    const view = this.#view;
    switch (event.type) {
      case "restart":
        this.#reread = new DeploymentMap();
        return;
      case "ready": {
        const seen = this.#reread;
        this.#reread = undefined;
        if (!event.restarted || !seen) return;
        // After a wiped store the read is the truth: forget keys it no longer holds.
        for (const [ref, devices] of view.desired) {
          for (const deviceId of devices.keys()) {
            if (!seen.get(ref)?.has(deviceId)) view.setDesired(ref, deviceId, undefined);
          }
        }
        for (const ref of view.deployments.keys()) this.mark(ref);
        return;
      }
      case "delete":
        this.#seen(event.ref, event.deviceId);
        view.setDesired(event.ref, event.deviceId, undefined);
        this.#markRefusedOn(new Set([event.deviceId]));
        return;
      case "put":
        this.#seen(event.ref, event.deviceId);
        view.setDesired(event.ref, event.deviceId, event.value);
        // An unreadable value differs from anything we want: rewrite it.
        if (event.value === undefined) this.mark(event.ref);
        this.#markRefusedOn(new Set([event.deviceId]));
        return;
    }
  }

  #seen(ref: DeploymentRef, deviceId: string): void {
    if (!this.#reread) return;
    let devices = this.#reread.get(ref);
    if (!devices) this.#reread.set(ref, devices = new Set());
    devices.add(deviceId);
  }

  /**
   * A device's labels changed (undefined: it left the registry). Marks only the deployments
   * whose targets gain or lose it: O(deployments) per change instead of re-selecting the
   * whole fleet for each. Before the first complete read nothing is marked: {@link start}
   * marks every deployment then.
   */
  deviceLabelsChanged(deviceId: string, labels: Labels | undefined): void {
    if (!this.#o.initialRead.complete) return;
    for (const [ref, deployment] of this.#view.deployments) {
      const targets = this.#view.targets.get(ref);
      const matches = labels !== undefined && inScope(this.#view.scopeOf(deployment), labels);
      if (targets === undefined || targets.has(deviceId) !== matches) this.mark(ref);
    }
  }

  /**
   * An admin bound a namespace to other devices (undefined: unbound it). Its deployments are
   * retargeted: devices leaving the binding lose their desired state, joining ones gain it.
   */
  bindingChanged(namespace: string, binding: string | undefined): void {
    const bindings = this.#view.bindings;
    if (bindings.get(namespace) === binding) return;
    if (binding === undefined) bindings.delete(namespace);
    else bindings.set(namespace, binding);
    this.#o.log.info(
      binding === undefined
        ? `Namespace ${namespace} is bound to no devices now`
        : `Namespace ${namespace} is bound to devices ${binding}`,
    );
    if (!this.#o.initialRead.complete) return;
    for (const ref of this.#view.deployments.keys()) {
      if (ref.namespace === namespace) this.mark(ref);
    }
  }

  /**
   * The first complete read is done: reconciles every deployment, every leftover desired key
   * and every stored status (of deployments deleted while no operator ran).
   * @returns when that first sync is done
   */
  start(): Promise<void> {
    const view = this.#view;
    for (const ref of this.#refused) this.#hold(ref);
    this.#refused.clear();
    for (const refs of [view.deployments.keys(), view.desired.keys(), view.statuses.keys()]) {
      for (const ref of refs) this.#markDirty(ref);
    }
    return this.#sync();
  }

  /**
   * A deployment whose source holds only a refused generation, seen at start: it is held at
   * what desired state has for it, so an operator restart takes nothing from its devices.
   */
  #hold(ref: DeploymentRef): void {
    const desired = this.#view.desired.get(ref);
    const held = heldDeployment(ref, desired);
    if (!held) return;
    this.#view.deployments.set(ref, held);
    this.#o.log.warn(
      `Deployment ${named(ref)}: its current generation is refused; the ${desired?.size} ` +
        `device(s) holding it keep generation ${held.metadata.generation}`,
    );
  }

  /** Whether the deployment's desired state is not yet known to match its targets. */
  isPending(ref: DeploymentRef): boolean {
    return this.#dirty.has(ref) || this.#retries.failingDevices(ref).length > 0;
  }

  /** Marks a deployment for a sync, a few milliseconds from now (once every input was read). */
  mark(ref: DeploymentRef): void {
    this.#markDirty(ref);
    if (!this.#o.initialRead.complete || this.#syncTimer !== undefined) return;
    this.#syncTimer = this.#o.clock.timer(SYNC_DELAY_MS, () => {
      this.#syncTimer = undefined;
      this.#sync().catch((error: unknown) => {
        this.#o.log.error(`Syncing desired state failed: ${(error as Error).message}`);
      });
    });
  }

  #markDirty(ref: DeploymentRef): void {
    this.#dirty.add(ref);
    this.#o.aggregateChanged(ref);
  }

  /** Cancels pending syncs and retries and waits for the sync in flight. */
  async stop(): Promise<void> {
    this.#syncTimer?.cancel();
    this.#syncTimer = undefined;
    this.#retries.clear();
    await this.#syncing;
  }

  /** Writes the desired-state diff of every deployment marked dirty. One sync at a time. */
  #sync(): Promise<void> {
    if (this.#syncing) {
      this.#resync = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#resync = false;
        // Each stays dirty until its own turn: until then its status must wait (isPending).
        for (const ref of [...this.#dirty]) {
          this.#dirty.delete(ref);
          const started = this.#o.clock.monotonic();
          const failures = await this.#syncDeployment(ref);
          const seconds = (this.#o.clock.monotonic() - started) / 1000;
          this.#o.reconciled?.("targeting", seconds, failures > 0);
        }
      } while (this.#resync || this.#dirty.size > 0);
    })().finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  /** Returns how many writes failed (each is retried). */
  async #syncDeployment(ref: DeploymentRef): Promise<number> {
    const view = this.#view;
    const store = this.#o.store;
    const deployment = view.deployments.get(ref);
    const targets = view.resolveTargets(ref);
    const current = view.desired.get(ref) ?? new Map<string, DesiredState>();
    const conflicts = this.#claims.conflictsOf(ref, targets);
    this.#refuse(ref, conflicts);
    // A progressive rollout decides per device (rollout_controller.ts); until it has, nothing.
    const wishes = deployment?.spec.rollout.strategy === "Progressive"
      ? view.rolloutWishes.get(ref) ?? new Map<string, DeviceWish>()
      : undefined;
    const wanted = deployment && !wishes ? desiredStateOf(deployment) : undefined;
    const wishOf = (deviceId: string) => wishes ? wishes.get(deviceId) ?? undefined : wanted;
    const diff = wishes
      ? diffPerDevice(current, targets, (deviceId) => wishes.get(deviceId))
      : diffTargets(current, targets, wanted);
    // A refused device keeps what it has: neither written nor, while targeted, removed.
    diff.put = diff.put.filter((deviceId) => !conflicts.has(deviceId));
    // A key that failed but is no longer to be written needs no retry.
    const toWrite = new Set([...diff.put, ...diff.remove]);
    for (const deviceId of this.#retries.failingDevices(ref)) {
      if (!toWrite.has(deviceId)) this.#retries.forget(ref, deviceId);
    }
    let added = 0;
    let removed = 0;
    let failures = 0;
    const written = new Set<string>();
    const write = async (deviceId: string, value: DesiredState | undefined) => {
      // Its retry marks the deployment again when due: writing now would defeat the backoff.
      if (this.#retries.waiting(ref, deviceId)) return;
      try {
        if (value) await store.put(deviceId, ref, value);
        else await store.delete(deviceId, ref);
        view.setDesired(ref, deviceId, value);
        written.add(deviceId);
        if (value) {
          this.#o.stats.desiredPuts++;
          added++;
        } else {
          this.#o.stats.desiredDeletes++;
          removed++;
        }
        this.#retries.forget(ref, deviceId);
      } catch (error) {
        this.#o.stats.writeErrors++;
        failures++;
        const { delayMs } = this.#retries.failed(ref, deviceId);
        this.#o.log.warn(
          `Could not update the desired state of device ${deviceId} for ${named(ref)}: ` +
            `${(error as Error).message}; retrying in ${delayMs} ms`,
        );
      }
    };
    const work = [
      ...diff.put.map((deviceId) => () => write(deviceId, wishOf(deviceId))),
      ...diff.remove.map((deviceId) => () => write(deviceId, undefined)),
    ];
    for (let i = 0; i < work.length; i += WRITE_BATCH) {
      await Promise.all(work.slice(i, i + WRITE_BATCH).map((w) => w()));
    }
    if (added + removed > 0) {
      this.#o.log.info(`Desired state of ${named(ref)} updated`, { added, removed });
    }
    this.#markRefusedOn(written, ref);
    // Not synced until every key is written; the retries come back here.
    if (this.#retries.failingDevices(ref).length > 0) return failures;
    this.#o.aggregateChanged(ref);
    if (!deployment && (this.#deleting.has(ref) || view.statuses.has(ref))) {
      await this.#release(ref);
    }
    return failures;
  }

  /** Records where the deployment is refused, keeping the time of a refusal that stays. */
  #refuse(ref: DeploymentRef, conflicts: ReadonlyMap<string, PortConflict>): void {
    const view = this.#view;
    const previous = view.refusals.get(ref);
    // After a restart the stored status still carries the time of the refusal it reports.
    const reported = view.statuses.get(ref)?.aggregate.lastError;
    const refusals = new Map<string, Refusal>();
    const fresh: string[] = [];
    for (const [deviceId, { by, message }] of conflicts) {
      const before = previous?.get(deviceId);
      let at = before?.message === message ? before.at : undefined;
      if (at === undefined && reported?.deviceId === deviceId && reported.message === message) {
        at = reported.at;
      }
      if (before?.message !== message) fresh.push(deviceId);
      refusals.set(deviceId, {
        by,
        message,
        at: at ?? new Date(this.#o.clock.now()).toISOString(),
      });
    }
    if (refusals.size > 0) view.refusals.set(ref, refusals);
    else view.refusals.delete(ref);
    if (fresh.length > 0) {
      this.#o.log.warn(
        `Deployment ${named(ref)} is not written to ${fresh.length} device(s) ` +
          `(${fresh.sort().slice(0, 5).join(", ")}${fresh.length > 5 ? ", ..." : ""}): ` +
          refusals.get(fresh[0]!)!.message,
      );
    }
  }

  /**
   * What `devices` hold changed, or `by` was synced: the deployments refused on one of those
   * devices, or because of `by`, are decided again.
   */
  #markRefusedOn(devices: ReadonlySet<string>, by?: DeploymentRef): void {
    for (const [ref, refusals] of this.#view.refusals) {
      for (const [deviceId, refusal] of refusals) {
        if (devices.has(deviceId) || (by !== undefined && sameRef(refusal.by, by))) {
          this.mark(ref);
          break;
        }
      }
    }
  }

  async #release(ref: DeploymentRef): Promise<void> {
    if (this.#retries.waiting(ref)) return;
    try {
      await this.#o.source.release(ref);
      this.#view.statuses.delete(ref);
      this.#deleting.delete(ref);
      this.#retries.forget(ref);
    } catch (error) {
      const { delayMs } = this.#retries.failed(ref);
      this.#o.log.warn(
        `Could not finish deleting ${named(ref)}: ${(error as Error).message}; ` +
          `retrying in ${delayMs} ms`,
      );
    }
  }
}
