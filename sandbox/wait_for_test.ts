import assert from "node:assert/strict";
import { waitFor } from "./local_fleet.ts";

Deno.test("waitFor() returns the first value that is not undefined", async () => {
  let calls = 0;
  assert.equal(
    await waitFor("the third call", () => ++calls === 3 ? "done" : undefined, 5000, 1),
    "done",
  );
  assert.equal(calls, 3);
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
