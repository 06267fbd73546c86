import assert from "node:assert/strict";
import {
  currentFailure,
  FAILURE_BACKOFF,
  type FailureBackoff,
  failureMessage,
  isBackingOff,
  recordFailure,
} from "./failure_backoff.ts";
import { LAST_ERROR_MAX } from "./deployment_state.ts";

const PULL = { what: "image pull failed: manifest unknown" };

/** The streak after `n` failures at the given times, with no jitter. */
function failures(times: number[], generation = 1): FailureBackoff {
  let state: FailureBackoff | undefined;
  for (const at of times) state = recordFailure(state, generation, PULL, at, 0);
  return state!;
}

Deno.test("recordFailure() waits 10 s after the first failure, doubling to 5 min", () => {
  let state: FailureBackoff | undefined;
  let now = 0;
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    state = recordFailure(state, 3, PULL, now, 0);
    delays.push(state.nextTryAt - now);
    now = state.nextTryAt;
  }
  assert.deepEqual(delays.map((d) => d / 1000), [10, 20, 40, 80, 160, 300, 300, 300]);
  assert.equal(state?.attempt, 8);
  assert.equal(state?.generation, 3);
  assert.deepEqual(FAILURE_BACKOFF, { initialMs: 10_000, maxMs: 300_000, factor: 2, jitter: 0.2 });
});

Deno.test("recordFailure() takes up to a fifth off at random, so devices that failed together spread out", () => {
  assert.equal(recordFailure(undefined, 1, PULL, 1000, 0).nextTryAt, 11_000);
  assert.equal(recordFailure(undefined, 1, PULL, 1000, 0.5).nextTryAt, 10_000);
  assert.equal(recordFailure(undefined, 1, PULL, 1000, 0.999_999).nextTryAt, 9_000);
});

Deno.test("recordFailure() says what failed, the attempt and when the next try is, once per failure", () => {
  const state = failures([0, 10_000, 30_000, 70_000]);
  assert.equal(state.message, "image pull failed: manifest unknown; attempt 4, next in 80 s");
  const jittered = recordFailure(undefined, 1, PULL, 0, 0.5);
  assert.equal(jittered.message, "image pull failed: manifest unknown; attempt 1, next in 9 s");
});

Deno.test("recordFailure() starts afresh for a new generation", () => {
  const old = failures([0, 10_000, 30_000], 1);
  const fresh = recordFailure(old, 2, PULL, 40_000, 0);
  assert.equal(fresh.attempt, 1);
  assert.equal(fresh.nextTryAt, 50_000);
});

Deno.test("isBackingOff() holds until the next try is due, and only for the generation that failed", () => {
  const state = failures([0]);
  assert.equal(isBackingOff(state, 1, 9_999), true);
  assert.equal(isBackingOff(state, 1, 10_000), false);
  assert.equal(isBackingOff(state, 2, 5_000), false, "a new generation is tried at once");
  assert.equal(isBackingOff(undefined, 1, 0), false);
  assert.equal(currentFailure(state, 1), state);
  assert.equal(currentFailure(state, 2), undefined);
});

Deno.test("failureMessage() keeps the end of a long output and always the attempt and next try", () => {
  const output = `${"x".repeat(400)} panic: cannot open /data/db`;
  const message = failureMessage(
    { what: "service web is crash-looping: exited with code 1, restarted 5 times", output },
    2,
    20_000,
  );
  assert.equal(message.length, LAST_ERROR_MAX);
  assert.match(
    message,
    /^service web is crash-looping: exited with code 1, restarted 5 times; last output: …x+ panic: cannot open \/data\/db; attempt 2, next in 20 s$/,
  );

  const short = failureMessage(
    { what: "start failed: port busy", output: "line 1\nline 2\n" },
    1,
    10_000,
  );
  assert.equal(
    short,
    "start failed: port busy; last output: line 1 line 2; attempt 1, next in 10 s",
  );

  const long = failureMessage(
    { what: `create failed: ${"y".repeat(500)}`, output: "z" },
    3,
    40_000,
  );
  assert.equal(long.length, LAST_ERROR_MAX);
  assert.match(long, /^create failed: y+…; attempt 3, next in 40 s$/);
});
