/**
 * After `fleet rollout pause|resume|approve|retry` stored an action: wait until the operator
 * took it (its stream sequence shows in the status's lastAction), and say what came of it.
 */
import type { Clock } from "../core/clock.ts";
import { FleetError } from "../core/errors.ts";
import type { DeploymentRef } from "../core/keys.ts";
import type { AppliedAction, RolloutStatus } from "../core/rollout_status.ts";
import type { RolloutTarget } from "./rollout_target.ts";

/** What was asked, for the messages. */
export interface StoredAction {
  ref: DeploymentRef;
  verb: string;
  /** Its sequence in the rollout actions stream. */
  seq: number;
  /**
   * The status's last action before it was stored: a stream the broker lost and made anew
   * numbers from 1 again, so a lower number than that one's is still this action.
   */
  before?: AppliedAction | undefined;
}

/** Whether `rollout` shows `action` (or a later one) taken. */
function taken(action: StoredAction, rollout: RolloutStatus | undefined): boolean {
  const last = rollout?.lastAction;
  if (last === undefined) return false;
  const { before } = action;
  const changed = before === undefined || last.seq !== before.seq || last.at !== before.at;
  return changed && (last.seq >= action.seq || (before !== undefined && before.seq >= action.seq));
}

/**
 * The rollout status once the operator took `action` (or a later one), watched on `target`.
 *
 * @throws {FleetError} when `timeoutMs` passes first: the action stays kept, and the operator
 *   applies it when it runs
 */
export async function waitForAction(
  target: RolloutTarget,
  action: StoredAction,
  options: { timeoutMs: number; clock: Clock },
): Promise<RolloutStatus> {
  const expiry = new AbortController();
  const timer = options.clock.timer(options.timeoutMs, () => expiry.abort());
  try {
    for await (const snapshot of target.watch(action.ref, expiry.signal)) {
      const rollout = snapshot?.rollout;
      if (rollout !== undefined && taken(action, rollout)) return rollout;
    }
  } finally {
    timer.cancel();
    expiry.abort();
  }
  const { ref, verb, seq } = action;
  throw new FleetError(
    "failure",
    `the operator has not taken the ${verb} of deployment ${ref.namespace}/${ref.name} within ` +
      `${Math.round(options.timeoutMs / 1000)} s (is it running?); the action is kept ` +
      `(number ${seq}) and will be applied when the operator runs`,
  );
}

/**
 * One line saying what came of `action`, given the status that took it.
 *
 * @throws {FleetError} when the operator refused it, with its reason
 */
export function actionOutcome(action: StoredAction, rollout: RolloutStatus): string {
  const { ref, verb, seq } = action;
  const name = `deployment ${ref.namespace}/${ref.name}`;
  const last = rollout.lastAction;
  if (last?.seq === seq && last.refused !== undefined) {
    throw new FleetError("failure", `${verb} of ${name} refused: ${last.refused}`);
  }
  const later = last !== undefined && last.seq > seq
    ? ` (then ${last.verb} by ${last.by} was taken too)`
    : "";
  return `${verb} of ${name} done${later}: ${rollout.phase} — ${rollout.message}`;
}
