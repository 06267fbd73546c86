/** Telling a refusal of the broker's permissions apart from other failures. */
import { PermissionViolationError } from "@nats-io/nats-core";

/**
 * The broker's refusal of a subject to this user that `error` is or was caused by (DESIGN.md
 * §8: on a request it is the cause of the RequestError); undefined when it is something else.
 */
export function brokerDenial(error: unknown): PermissionViolationError | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e instanceof PermissionViolationError) return e;
    e = e.cause;
  }
  return undefined;
}

/** Whether `error`, or an error it was caused by, is the broker refusing a subject. */
export function deniedByBroker(error: unknown): boolean {
  return brokerDenial(error) !== undefined;
}
