/**
 * The port leader election runs on: one lease record with compare-and-set writes. A
 * Kubernetes Lease (`kube_lease.ts`) and a NATS KV key (`nats_lease.ts`) are its adapters;
 * the election loop (`leader_election.ts`) is written once against it.
 * @module
 */
import type { LeaseRecord } from "../core/mod.ts";

export type { LeaseRecord } from "../core/mod.ts";

/** A lease as read, with the revision a conditional write must name. */
export interface StoredLease {
  record: LeaseRecord;
  /** Opaque: changes on every write (a resourceVersion, a KV revision). */
  revision: string;
}

/**
 * The result of a conditional write: the new revision, or `conflict` when the lease was
 * created or changed by someone else since it was read (that replica won the race).
 */
export type LeaseWrite = { outcome: "written"; revision: string } | { outcome: "conflict" };

/** One lease in some store, written only by compare-and-set. */
export interface LeaseStore {
  /** Where the lease lives, for log lines: `Lease fleet-system/fleet-operator`. */
  readonly description: string;
  /**
   * The lease, or undefined when there is none (never created, or deleted).
   * @throws {LeaseStoreError} when the store cannot be reached or holds no readable lease.
   */
  get(): Promise<StoredLease | undefined>;
  /**
   * Creates the lease; `conflict` when it exists already.
   * @throws {LeaseStoreError} when the store cannot be reached.
   */
  create(record: LeaseRecord): Promise<LeaseWrite>;
  /**
   * Replaces the lease if it is still at `revision`; `conflict` when it is not.
   * @throws {LeaseStoreError} when the store cannot be reached.
   */
  update(record: LeaseRecord, revision: string): Promise<LeaseWrite>;
}

/** The lease could not be read or written; the message names the lease and the cause. */
export class LeaseStoreError extends Error {
  override name = "LeaseStoreError";
  /** The {@link LeaseStore.description} of the lease. */
  readonly lease: string;
  constructor(message: string, lease: string, options?: ErrorOptions) {
    super(message, options);
    this.lease = lease;
  }
}
