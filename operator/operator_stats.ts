/** What the operator's controllers count, for tests, logs and the benches. */

/** Write counters since the operator started. */
export interface OperatorStats {
  desiredPuts: number;
  desiredDeletes: number;
  statusWrites: number;
  /** Failed desired-state and status writes (each attempt). */
  writeErrors: number;
  bucketsRecreated: number;
}

/** All counters at zero. */
export function zeroStats(): OperatorStats {
  return {
    desiredPuts: 0,
    desiredDeletes: 0,
    statusWrites: 0,
    writeErrors: 0,
    bucketsRecreated: 0,
  };
}

/** The operator's controllers that reconcile in passes: desired state and deployment status. */
export type ReconcilingController = "targeting" | "status";

/** Told after each reconcile pass: how long it took and whether any write in it failed. */
export type ReconcileObserver = (
  controller: ReconcilingController,
  seconds: number,
  failed: boolean,
) => void;
