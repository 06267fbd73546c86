/**
 * The port the operator writes desired state through (DESIGN.md §2: the `desired-state`
 * bucket, one key per device and deployment) and reads back what is there, so a restart
 * writes only the difference. The NATS adapter is `nats_desired_state.ts`.
 * @module
 */
import type { DeploymentRef, DesiredState } from "../core/mod.ts";

/** One change of the stored desired state, in order. */
export type DesiredStateEvent =
  /** A value is stored; `value` is undefined when it cannot be read (it must be rewritten). */
  | { type: "put"; deviceId: string; ref: DeploymentRef; value: DesiredState | undefined }
  | { type: "delete"; deviceId: string; ref: DeploymentRef }
  /**
   * A new complete read starts (the store was wiped, or the watch lost track): a key known
   * before that is not delivered again before the next `ready` no longer exists.
   */
  | { type: "restart" }
  /** Every value stored when the read began has been delivered. */
  | { type: "ready"; restarted: boolean };

/** Desired state of every device, as the operator writes and reads it. */
export interface DesiredStateStore {
  put(deviceId: string, ref: DeploymentRef, value: DesiredState): Promise<void>;
  delete(deviceId: string, ref: DeploymentRef): Promise<void>;
  /** The values stored now, then every change, until `signal` aborts. */
  watch(signal: AbortSignal): AsyncIterable<DesiredStateEvent>;
}
