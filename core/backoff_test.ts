import assert from "node:assert/strict";
import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.ts";

Deno.test("backoffDelay() doubles from 100 ms and stops at 30 s without jitter", () => {
  const delays = Array.from({ length: 12 }, (_, i) => backoffDelay(i + 1, 0));
  assert.deepEqual(delays, [
    100,
    200,
    400,
    800,
    1_600,
    3_200,
    6_400,
    12_800,
    25_600,
    30_000,
    30_000,
    30_000,
  ]);
});

Deno.test("backoffDelay() takes at most the jitter fraction off, and still grows", () => {
  for (let failures = 1; failures < 20; failures++) {
    const high = backoffDelay(failures, 0);
    const low = backoffDelay(failures, 0.999_999);
    assert.ok(low >= Math.floor(high * (1 - DEFAULT_BACKOFF.jitter)), `${failures}: ${low}`);
    assert.ok(low <= high);
    // The earliest next retry is later than the latest one before, below the cap.
    if (backoffDelay(failures + 1, 0) < DEFAULT_BACKOFF.maxMs) {
      assert.ok(backoffDelay(failures + 1, 0.999_999) > high);
    }
  }
});

Deno.test("backoffDelay() follows a custom policy and survives long failure streaks", () => {
  const policy: BackoffPolicy = { initialMs: 1_000, maxMs: 5_000, factor: 3, jitter: 0 };
  assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, 0.5, policy)), [1_000, 3_000, 5_000]);
  assert.equal(backoffDelay(10_000, 0), DEFAULT_BACKOFF.maxMs);
});

Deno.test("backoffDelay() rejects a failure count below 1", () => {
  assert.throws(() => backoffDelay(0, 0), RangeError);
  assert.throws(() => backoffDelay(1.5, 0), /failures must be at least 1, got 1.5/);
});
