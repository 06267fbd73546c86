import assert from "node:assert/strict";
import { FakeClock } from "../testing/fake_clock.ts";
import { RetryQueue } from "./retry_queue.ts";

Deno.test("RetryQueue retries a key that keeps failing at growing intervals, up to the cap", async () => {
  const clock = new FakeClock();
  const dueAt: number[] = [];
  const queue = new RetryQueue<string>({
    clock,
    random: () => 0.5,
    onDue: (item) => {
      dueAt.push(clock.monotonic());
      // It fails again at once, as a denied write does.
      queue.failed("k", item);
    },
  });
  queue.failed("k", "k");
  await clock.advance(120_000);
  const gaps = dueAt.map((t, i) => t - (dueAt[i - 1] ?? 0));
  // 100 ms doubling, less 10 % (jitter 0.2 × 0.5), capped at 30 s less 10 %.
  assert.deepEqual(gaps.slice(0, 10), [90, 180, 360, 720, 1440, 2880, 5760, 11520, 23040, 27000]);
  assert.ok(gaps.length < 15, `${gaps.length} retries in two minutes`);
  queue.clear();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("RetryQueue starts over after a success and does not retry before the backoff", async () => {
  const clock = new FakeClock();
  const due: string[] = [];
  const queue = new RetryQueue<string>({ clock, random: () => 0, onDue: (i) => due.push(i) });
  assert.deepEqual(queue.failed("a", "a"), { failures: 1, delayMs: 100 });
  assert.deepEqual(queue.failed("a", "a"), { failures: 2, delayMs: 200 });
  assert.equal(queue.waiting("a"), true);
  await clock.advance(199);
  assert.deepEqual(due, []);
  await clock.advance(1);
  assert.deepEqual(due, ["a"]);
  assert.equal(queue.waiting("a"), false);
  assert.equal(queue.failing("a"), true);
  queue.forget("a");
  assert.equal(queue.failing("a"), false);
  assert.deepEqual(queue.failed("a", "a"), { failures: 1, delayMs: 100 });
  queue.forget("a");
  await clock.advance(1_000);
  assert.deepEqual(due, ["a"], "a forgotten retry does not fire");
  assert.equal(queue.size, 0);
});
