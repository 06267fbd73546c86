import * as z from "zod";

/**
 * The NATS KV bucket of leader-election leases. Not one of {@link Buckets}: only operators
 * started with `--leader-elect --source nats` need it, so only they create it.
 */
export const LEASE_BUCKET = "fleet-leases";

/** The key, in {@link LEASE_BUCKET}, of the lease the operator replicas compete for. */
export const OPERATOR_LEASE_KEY = "operator";

/**
 * A leader-election lease: the value of a key in {@link LEASE_BUCKET}, and the fields of a
 * Kubernetes `coordination.k8s.io/v1` LeaseSpec, so both stores hold the same record.
 *
 * The times are for people reading the lease. No replica compares a time written by another
 * (their clocks may disagree): a standby judges expiry on its own clock, from when it last
 * saw the lease change.
 */
export const LeaseRecord = z.object({
  /** The replica that holds the lease; empty when it was released. */
  holderIdentity: z.string(),
  /** A standby may take over once the holder has not renewed for this long. */
  leaseDurationSeconds: z.number().int().positive(),
  /** When the current holder acquired it (RFC 3339), informative. */
  acquireTime: z.string(),
  /** When the current holder last renewed it (RFC 3339), informative. */
  renewTime: z.string(),
  /** How many times the lease changed hands. */
  leaseTransitions: z.number().int().nonnegative(),
});
export type LeaseRecord = z.infer<typeof LeaseRecord>;
