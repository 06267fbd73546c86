/** How attack stories tell that the broker, not something else, stopped an attempt. */
import assert from "node:assert/strict";
import { PermissionViolationError } from "@nats-io/nats-core";

/** Whether `err`, or an error it was caused by, is the server refusing a subject. */
export function denied(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (e instanceof PermissionViolationError) return true;
    if (e instanceof Error && /permissions violation/i.test(e.message)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** Asserts that `attempt` fails with a permission violation; `what` names it in the failure. */
export async function refused(what: string, attempt: () => Promise<unknown>): Promise<void> {
  const outcome = await attempt().then(() => undefined, (e: unknown) => e);
  assert.ok(denied(outcome), `${what}: expected a permission violation, got ${outcome}`);
}
