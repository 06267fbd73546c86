import assert from "node:assert/strict";
import type { DeploymentRef } from "../core/mod.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { RetryQueue } from "./retry_queue.ts";

const WEB: DeploymentRef = { namespace: "default", name: "web" };
const API: DeploymentRef = { namespace: "default", name: "api" };

Deno.test("RetryQueue retries a key that keeps failing at growing intervals, up to the cap", async () => {
  const clock = new FakeClock();
  const dueAt: number[] = [];
  const queue = new RetryQueue({
    clock,
    random: () => 0.5,
    onDue: (ref) => {
      dueAt.push(clock.monotonic());
      // It fails again at once, as a denied write does.
      queue.failed(ref, "dev1");
    },
  });
  queue.failed(WEB, "dev1");
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
  const queue = new RetryQueue({ clock, random: () => 0, onDue: (ref) => due.push(ref.name) });
  assert.deepEqual(queue.failed(WEB, "dev1"), { failures: 1, delayMs: 100 });
  assert.deepEqual(queue.failed(WEB, "dev1"), { failures: 2, delayMs: 200 });
  assert.equal(queue.waiting(WEB, "dev1"), true);
  assert.equal(queue.waiting(WEB), false, "the deployment's own key is another key");
  await clock.advance(199);
  assert.deepEqual(due, []);
  await clock.advance(1);
  assert.deepEqual(due, ["web"]);
  assert.equal(queue.waiting(WEB, "dev1"), false);
  assert.equal(queue.failing(WEB, "dev1"), true);
  queue.forget(WEB, "dev1");
  assert.equal(queue.failing(WEB, "dev1"), false);
  assert.deepEqual(queue.failed(WEB, "dev1"), { failures: 1, delayMs: 100 });
  queue.forget(WEB, "dev1");
  await clock.advance(1_000);
  assert.deepEqual(due, ["web"], "a forgotten retry does not fire");
  assert.equal(queue.size, 0);
});

Deno.test("RetryQueue keeps the keys of each deployment apart", () => {
  const clock = new FakeClock();
  const queue = new RetryQueue({ clock, onDue: () => {} });
  queue.failed(WEB, "dev1");
  queue.failed(WEB, "dev2");
  queue.failed(WEB);
  queue.failed(API, "dev1");
  assert.deepEqual(queue.failingDevices(WEB).sort(), ["dev1", "dev2"]);
  assert.deepEqual(queue.failingDevices(API), ["dev1"]);
  assert.equal(queue.size, 4);
  queue.forget(WEB);
  assert.equal(queue.failing(WEB), false);
  assert.equal(queue.failing(WEB, "dev2"), true);
  queue.clear();
  assert.equal(clock.pendingTimers, 0);
});
