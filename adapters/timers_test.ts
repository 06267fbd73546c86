import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { DeadlineError, untilAborted, waitFor, withDeadline } from "./timers.ts";

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

Deno.test("untilAborted() yields until the abort, then ends the source", async () => {
  const controller = new AbortController();
  let returned = false;
  async function* source() {
    try {
      for (let i = 0;; i++) yield i;
    } finally {
      returned = true;
    }
  }
  const seen: number[] = [];
  for await (const i of untilAborted(source(), controller.signal)) {
    seen.push(i);
    if (i === 2) controller.abort();
  }
  assert.deepEqual(seen, [0, 1, 2]);
  assert.equal(returned, true);
});

Deno.test("untilAborted() ends a wait for a source that yields nothing more when aborted", async () => {
  const controller = new AbortController();
  const never = { [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => {}) }) };
  const waiting = untilAborted(never, controller.signal).next();
  controller.abort();
  assert.deepEqual(await waiting, { value: undefined, done: true });
});

Deno.test("untilAborted() keeps no item once the caller took it", async () => {
  const controller = new AbortController();
  async function* source() {
    for (let i = 0; i < 20; i++) yield new Uint8Array(1024);
    await new Promise(() => {}); // a watch that waits for its next event
  }
  const items = untilAborted(source(), controller.signal);
  const taken: WeakRef<Uint8Array>[] = [];
  for (let i = 0; i < 20; i++) taken.push(new WeakRef((await items.next()).value as Uint8Array));
  // A collection in a later task (a WeakRef keeps its target for the task that made it), to
  // tell what the running watch still reaches from what is only garbage.
  await new Promise((resolve) => setTimeout(resolve, 0));
  setFlagsFromString("--expose-gc");
  runInNewContext("gc")();
  const kept = taken.filter((item) => item.deref() !== undefined).length;
  assert.ok(kept <= 1, `the watch still holds ${kept} of the 20 items the caller took`);
  controller.abort();
  await items.next();
});
