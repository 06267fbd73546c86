/** Helpers shared by the OIDC adapter tests. */

import assert from "node:assert/strict";

/** Awaits `promise`, asserts it rejects with an instance of `type`, and returns the error. */
export async function rejection<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name}, but the promise resolved`);
}
