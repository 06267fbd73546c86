/**
 * The aggregation controller: folds device reports into each deployment's aggregate
 * (pure: `computeAggregate`) and writes the status when it changed, at most once per flush
 * interval per deployment (DESIGN.md §4), so a burst of reports costs one or two writes.
 * @module
 */
import {
  type Aggregate,
  aggregateEquals,
  type BackoffPolicy,
  type Clock,
  type DeploymentRef,
  type DeploymentStatus,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import type { DeploymentSource } from "./deployment_source.ts";
import { DeploymentMap, DeploymentSet } from "./deployment_map.ts";
import type { FleetView } from "./fleet_view.ts";
import type { InitialRead } from "./initial_read.ts";
import type { OperatorStats, ReconcileObserver } from "./operator_stats.ts";
import type { DeviceStateEvent } from "./report_feed.ts";
import { RetryQueue } from "./retry_queue.ts";

/** Options of {@link AggregateFlusher}. */
export interface AggregateFlusherOptions {
  view: FleetView;
  /** Where statuses are written. */
  source: DeploymentSource;
  initialRead: InitialRead;
  clock: Clock;
  log: Logger;
  stats: OperatorStats;
  /** Told how long each flush that wrote statuses took and whether a write failed. */
  reconciled?: ReconcileObserver | undefined;
  /** A deployment's status is written at most this often. */
  flushIntervalMs: number;
  /** A device silent for longer counts as unreachable. */
  staleAfterMs: number;
  /**
   * Whether a deployment's desired state is not yet synced with its targets: its status
   * waits, so the status of a generation follows its desired state.
   */
  syncPending: (ref: DeploymentRef) => boolean;
  /** Spacing of retries after failed writes. @default DEFAULT_BACKOFF */
  retry?: BackoffPolicy;
}

/** Recomputes marked aggregates and writes the changed ones, spaced per deployment. */
export class AggregateFlusher {
  readonly #o: AggregateFlusherOptions;
  readonly #dirty = new DeploymentSet();
  /** Monotonic ms of each deployment's last status write. */
  readonly #flushedAt = new DeploymentMap<number>();
  readonly #retries: RetryQueue;

  constructor(options: AggregateFlusherOptions) {
    this.#o = options;
    this.#retries = new RetryQueue({
      clock: options.clock,
      onDue: (ref) => this.markDirty(ref),
      ...(options.retry ? { policy: options.retry } : {}),
    });
  }

  /** The deployment's aggregate may have changed: it is recomputed on the next flush. */
  markDirty(ref: DeploymentRef): void {
    this.#dirty.add(ref);
  }

  /**
   * A device reported the state of a deployment (or its report was deleted). A report on a
   * deployment not targeted at the device is not kept (`FleetView.wantsState`); before the
   * first complete read nothing can be judged yet, and what is kept then is pruned once the
   * targets are resolved.
   */
  onReport(event: DeviceStateEvent): void {
    const view = this.#o.view;
    if (event.type === "put") {
      if (this.#o.initialRead.complete && !view.wantsState(event.ref, event.deviceId)) {
        view.setState(undefined, event.ref, event.deviceId);
        this.#o.log.debug(
          `Ignored the report of device ${event.deviceId} on ${event.ref.namespace}/` +
            `${event.ref.name}: that deployment is not targeted at it`,
        );
        return;
      }
      view.setState(event.state, event.ref, event.deviceId);
    } else if (event.type === "delete") view.setState(undefined, event.ref, event.deviceId);
    else return;
    this.markDirty(event.ref);
  }

  /** The stored statuses were lost (their bucket was re-created): write every one again. */
  rewriteAll(): void {
    this.#o.view.statuses.clear();
    for (const ref of this.#o.view.deployments.keys()) this.markDirty(ref);
  }

  /**
   * Flushes until `signal` aborts, ticking faster than the per-deployment limit so that a
   * first change goes out at once.
   */
  async run(signal: AbortSignal): Promise<void> {
    const tick = Math.max(50, this.#o.flushIntervalMs / 10);
    await every(tick, signal, () => this.flush(), this.#o.clock);
    this.#retries.clear();
  }

  /** Writes changed aggregates, each deployment at most once per flush interval. */
  async flush(): Promise<void> {
    const { view, clock, flushIntervalMs } = this.#o;
    if (!this.#o.initialRead.complete) return;
    const now = clock.now();
    // Spacing is measured on the monotonic clock: a wall-clock step must not stall it.
    const tick = clock.monotonic();
    const refs = [...this.#dirty].filter((ref) =>
      tick - (this.#flushedAt.get(ref) ?? -Infinity) >= flushIntervalMs &&
      !this.#retries.waiting(ref)
    );
    for (const ref of refs) this.#dirty.delete(ref);
    let failures = 0;
    await Promise.all(refs.map(async (ref) => {
      const deployment = view.deployments.get(ref);
      // Not yet synced: the targets (and so the aggregate) would be out of date.
      if (!deployment) {
        this.#flushedAt.delete(ref);
        this.#retries.forget(ref);
        return;
      }
      if (this.#o.syncPending(ref)) {
        this.#dirty.add(ref);
        return;
      }
      const aggregate = view.aggregate(ref, now, this.#o.staleAfterMs) as Aggregate;
      const previous = view.statuses.get(ref);
      const generation = deployment.metadata.generation;
      const rollout = view.rollouts.get(ref);
      if (
        previous && previous.observedGeneration === generation &&
        aggregateEquals(previous.aggregate, aggregate) && previous.rollout === rollout
      ) return;
      const status: DeploymentStatus = {
        namespace: deployment.metadata.namespace,
        name: deployment.metadata.name,
        observedGeneration: generation,
        aggregate,
        ...(rollout === undefined ? {} : { rollout }),
        updatedAt: new Date(now).toISOString(),
      };
      this.#flushedAt.set(ref, tick);
      try {
        await this.#o.source.writeStatus(status);
        view.statuses.set(ref, status);
        this.#o.stats.statusWrites++;
        this.#retries.forget(ref);
      } catch (error) {
        this.#o.stats.writeErrors++;
        failures++;
        const { delayMs } = this.#retries.failed(ref);
        this.#o.log.warn(
          `Could not write the status of ${ref.namespace}/${ref.name}: ` +
            `${(error as Error).message}; retrying in ${delayMs} ms`,
        );
      }
    }));
    if (refs.length > 0) {
      this.#o.reconciled?.("status", (clock.monotonic() - tick) / 1000, failures > 0);
    }
  }
}
