import assert from "node:assert/strict";
import { DeadlineError, withDeadline } from "./timers.ts";

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
