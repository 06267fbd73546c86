/**
 * The bucket controller: checks now and then that every bucket still exists and re-creates
 * one that vanished (broker data loss); the owners of its keys refill it (DESIGN.md §4
 * "Self-healing"). It also makes a report bucket that allows rollups refuse them, and gives a
 * bucket without size limits its limits, in place.
 * @module
 */
import type { BucketName, Clock } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import { type BucketKeeper, overfullMessage } from "./bucket_keeper.ts";
import type { OperatorStats } from "./operator_stats.ts";

/** Options of {@link BucketAuditor}. */
export interface BucketAuditorOptions {
  keeper: BucketKeeper;
  clock: Clock;
  log: Logger;
  stats: OperatorStats;
  /** How often the buckets are checked. */
  intervalMs: number;
  /** Called after a bucket was re-created, empty. */
  recreated: (bucket: BucketName) => void;
}

/**
 * Re-creates vanished buckets, closes report buckets to rollups and gives every bucket its size
 * limits, checking every interval.
 */
export class BucketAuditor {
  readonly #o: BucketAuditorOptions;

  constructor(options: BucketAuditorOptions) {
    this.#o = options;
  }

  /** Audits every interval until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await every(this.#o.intervalMs, signal, () => this.audit(), this.#o.clock);
  }

  /**
   * Re-creates the buckets that are missing now, then makes the report buckets refuse rollups
   * and every bucket keep its size limits, and re-creates the streams (audit trail, rollout actions) that are gone.
   */
  async audit(): Promise<void> {
    const { keeper, log } = this.#o;
    let missing: BucketName[];
    try {
      missing = await keeper.missing();
    } catch (error) {
      // Mostly a broker out of reach, which the connection already reports.
      log.debug(`Could not check that the buckets exist: ${(error as Error).message}`);
      return;
    }
    for (const bucket of missing) {
      log.warn(`The "${bucket}" bucket is missing from NATS; recreating it`);
      try {
        await keeper.recreate(bucket);
        this.#o.stats.bucketsRecreated++;
        this.#o.recreated(bucket);
      } catch (error) {
        log.warn(`Could not recreate the "${bucket}" bucket: ${(error as Error).message}`);
      }
    }
    try {
      for (const bucket of await keeper.refuseRollups()) {
        log.warn(
          `The "${bucket}" bucket allowed rollups, with which any device could wipe every ` +
            `other device's reports; it refuses them now`,
        );
      }
      const { changed, overfull } = await keeper.applyLimits();
      for (const bucket of changed) {
        log.warn(
          `The "${bucket}" bucket had no size limits, with which any device could fill the ` +
            `broker's disk; it has them now`,
        );
      }
      for (const bucket of overfull) log.warn(overfullMessage(bucket));
      for (const stream of await keeper.ensureStreams()) {
        log.warn(`The "${stream}" stream was missing from NATS; recreated it`);
      }
    } catch (error) {
      log.warn((error as Error).message);
    }
  }
}
