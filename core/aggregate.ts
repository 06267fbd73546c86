/** The operator's fold of device reports into one deployment's aggregate. Pure. */
import type { Aggregate, LastError } from "./deployment_status.ts";
import type { DeploymentState } from "./deployment_state.ts";

/** Heartbeats come every 30 s; three missed ones make a device unreachable. */
export const DEFAULT_STALE_AFTER_MS = 90_000;

/**
 * Generation an agent reports when it could not even read which generation it was given
 * (a malformed desired-state value): such a failure counts against the current generation.
 */
export const UNKNOWN_GENERATION = 0;

export interface AggregateInput {
  /** The deployment's current generation. */
  generation: number;
  /** Devices the selector matches now. */
  matched: Iterable<string>;
  stateOf(deviceId: string): DeploymentState | undefined;
  /** Epoch ms of the device's last heartbeat, undefined if none was seen. */
  lastSeenOf(deviceId: string): number | undefined;
  /**
   * Why the operator did not write the deployment to the device (a port conflict), and since
   * when: the device counts as Failed with that error whatever it reported.
   */
  refusalOf?(deviceId: string): { message: string; at: string } | undefined;
  now: number;
  staleAfterMs: number;
  /** Why the deployment can target no device (then `matched` is empty). */
  targetingProblem?: string | undefined;
}

/** Whether a report speaks for the current generation. */
function isCurrent(state: DeploymentState, generation: number): boolean {
  return state.generation >= generation ||
    (state.phase === "Failed" && state.generation === UNKNOWN_GENERATION);
}

function newer(current: LastError | null, candidate: LastError): LastError {
  return current === null || candidate.at > current.at ? candidate : current;
}

/** Counts succeeded, failed, pending and unreachable devices; pending includes the silent ones. */
export function computeAggregate(input: AggregateInput): Aggregate {
  let matched = 0;
  let succeeded = 0;
  let failed = 0;
  let unreachable = 0;
  let lastError: LastError | null = null;
  for (const deviceId of input.matched) {
    matched++;
    const seen = input.lastSeenOf(deviceId);
    if (seen === undefined || input.now - seen > input.staleAfterMs) unreachable++;
    const refusal = input.refusalOf?.(deviceId);
    if (refusal) {
      failed++;
      lastError = newer(lastError, { deviceId, message: refusal.message, at: refusal.at });
      continue;
    }
    const state = input.stateOf(deviceId);
    if (state === undefined || !isCurrent(state, input.generation)) continue;
    if (state.phase === "Running") succeeded++;
    if (state.phase === "Failed") failed++;
    if (state.lastError !== null) {
      lastError = newer(lastError, { deviceId, message: state.lastError, at: state.lastEventAt });
    }
  }
  return {
    matchedDeviceCount: matched,
    succeeded,
    failed,
    pending: matched - succeeded - failed,
    unreachable,
    lastError,
    ...(input.targetingProblem !== undefined ? { targetingProblem: input.targetingProblem } : {}),
  };
}

/** Whether two aggregates differ, so a flush can be skipped when nothing changed. */
export function aggregateEquals(a: Aggregate, b: Aggregate): boolean {
  return a.matchedDeviceCount === b.matchedDeviceCount && a.succeeded === b.succeeded &&
    a.failed === b.failed && a.pending === b.pending && a.unreachable === b.unreachable &&
    a.lastError?.deviceId === b.lastError?.deviceId &&
    a.lastError?.message === b.lastError?.message && a.lastError?.at === b.lastError?.at &&
    a.targetingProblem === b.targetingProblem;
}
