/** Telling a refusal of the broker's permissions apart from other failures. */
import { PermissionViolationError } from "@nats-io/nats-core";

/**
 * Whether `error`, or an error it was caused by, is the broker refusing a subject to this
 * user (DESIGN.md §8: on a request it is the cause of the RequestError).
 */
export function deniedByBroker(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e instanceof PermissionViolationError) return true;
    e = e.cause;
  }
  return false;
}
