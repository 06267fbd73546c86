import assert from "node:assert/strict";
import { DeadlineError, waitFor, withDeadline } from "./timers.ts";

Deno.test("withDeadline() settles like the work when it is done in time", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 1000, "late"), 7);
  await assert.rejects(withDeadline(Promise.reject(new Error("broke")), 1000, "late"), /broke/);
});

Deno.test("withDeadline() rejects with its message when the work never settles", async () => {
  const never = new Promise<void>(() => {});
  await assert.rejects(
    withDeadline(never, 20, "the server did not answer within 20 ms"),
    (error: unknown) =>
      error instanceof DeadlineError &&
      error.message === "the server did not answer within 20 ms",
  );
});

Deno.test("waitFor() returns the first value that is not undefined or false", async () => {
  let calls = 0;
  assert.equal(
    await waitFor("the third call", () => ++calls === 3 ? "done" : undefined, 5000, 1),
    "done",
  );
  assert.equal(calls, 3);
  let checks = 0;
  assert.equal(await waitFor("a condition", () => ++checks === 2, 5000, 1), true);
  assert.equal(checks, 2);
});

Deno.test("waitFor() times out naming what it waited for and the last error", async () => {
  await assert.rejects(
    () => waitFor("the moon", () => Promise.reject(new Error("no moon tonight")), 100, 10),
    /Timed out after 100 ms waiting for the moon \(last error: no moon tonight\)/,
  );
});

Deno.test("waitFor() abandons a check that never returns, and aborts its signal", async () => {
  let seen: AbortSignal | undefined;
  await assert.rejects(
    () =>
      waitFor("a stuck read", (signal) => {
        seen = signal;
        return new Promise<undefined>(() => {});
      }, 100),
    /waiting for a stuck read \(the last check had not returned\)/,
  );
  assert.equal(seen?.aborted, true);
});
