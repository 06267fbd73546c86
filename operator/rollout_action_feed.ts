/** Where the operator hears of people's rollout actions (the port; nats_rollout_actions.ts). */
import type { DeploymentRef } from "../core/keys.ts";
import type { RolloutAction } from "../core/rollout.ts";

/** One action as the stream holds it; `action.by` is the principal of its subject. */
export interface RolloutActionEvent {
  /** Its sequence in the stream: actions are applied once, in this order. */
  seq: number;
  ref: DeploymentRef;
  action: RolloutAction;
  /** When the broker stored it (epoch ms, the control plane's clock). */
  at: number;
}

export interface RolloutActionFeed {
  /**
   * Every kept action, oldest first, then `{ ready: true }` once, then each new action as it
   * is published, until `signal` aborts. A message that is not an action is logged and skipped.
   */
  follow(signal: AbortSignal): AsyncIterable<RolloutActionEvent | { ready: true }>;
}
