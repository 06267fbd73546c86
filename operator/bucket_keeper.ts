/**
 * The port through which the operator keeps its buckets in existence: created at start,
 * re-created when broker data loss took one away (their owners then refill them; DESIGN.md
 * §4 "Self-healing"). The NATS adapter is `nats_bucket_keeper.ts`.
 * @module
 */
import type { BucketName } from "../core/mod.ts";

/** Creates the operator's buckets and tells which ones vanished. */
export interface BucketKeeper {
  /**
   * Creates every bucket of DESIGN.md §2 that does not exist, retrying while the broker
   * cannot (down, or a cluster still forming), and makes the report buckets refuse rollups.
   * @returns false when `signal` aborted first
   */
  ensureAll(signal: AbortSignal): Promise<boolean>;
  /**
   * The buckets that no longer exist.
   * @throws when it cannot tell (the broker cannot be reached)
   */
  missing(): Promise<BucketName[]>;
  /** Creates a bucket found missing, with its usual settings. */
  recreate(bucket: BucketName): Promise<void>;
  /**
   * Makes the report buckets that still allow rollups (created by an older operator, or by
   * something else) refuse them, in place: their entries stay.
   * @returns the buckets it changed
   * @throws when it cannot (the broker cannot be reached)
   */
  refuseRollups(): Promise<BucketName[]>;
  /**
   * Gives the buckets without them the size limits of core/limits.ts, in place: their entries
   * stay. A bucket that already holds more than its `max_bytes` keeps its old one.
   * @returns the buckets it changed, and those too full for their `max_bytes`
   * @throws when it cannot (the broker cannot be reached)
   */
  applyLimits(): Promise<{ changed: BucketName[]; overfull: BucketName[] }>;
  /**
   * Creates the control plane's streams unless they exist: the audit trail (`fleet-audit`,
   * DESIGN.md §9), where devices write the records of their commands, and the rollout actions
   * (`fleet-rollout-actions`), where people's pause, resume, approve and retry wait for the
   * operator. Nothing else re-creates them after a loss.
   * @returns the streams it had to create
   * @throws when it cannot (the broker cannot be reached)
   */
  ensureStreams(): Promise<string[]>;
}

/** Why a bucket kept its old `max_bytes` (or none), for the log. */
export function overfullMessage(bucket: BucketName): string {
  return `The "${bucket}" bucket holds more than its size limit (core/limits.ts); it keeps its ` +
    `old limit until enough entries are gone`;
}
