import assert from "node:assert/strict";
import { FakeClock } from "./fake_clock.ts";
import { every, sleep, withDeadline } from "../adapters/timers.ts";

Deno.test("FakeClock.advance() fires due timers in order and moves both clocks", async () => {
  const clock = new FakeClock(1_000);
  const fired: string[] = [];
  clock.timer(30, () => fired.push("b"));
  clock.timer(10, () => fired.push("a"));
  const late = clock.timer(100, () => fired.push("never"));
  late.cancel();
  await clock.advance(50);
  assert.deepEqual(fired, ["a", "b"]);
  assert.equal(clock.now(), 1_050);
  assert.equal(clock.monotonic(), 50);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("FakeClock.jump() steps the wall clock alone and fires nothing", async () => {
  const clock = new FakeClock(1_000);
  let fired = false;
  clock.timer(10, () => fired = true);
  clock.jump(3_600_000);
  clock.jump(-500);
  assert.equal(clock.now(), 3_600_500);
  assert.equal(clock.monotonic(), 0);
  assert.equal(fired, false);
  await clock.advance(10);
  assert.equal(fired, true);
  assert.equal(clock.now(), 3_600_510);
});

Deno.test("sleep() and every() run on an injected clock, without real waiting", async () => {
  const clock = new FakeClock();
  const controller = new AbortController();
  let ticks = 0;
  const loop = every(1_000, controller.signal, () => void ticks++, clock);
  await clock.advance(10_500);
  assert.equal(ticks, 10);
  controller.abort();
  await loop;
  let woke = false;
  const nap = sleep(60_000, new AbortController().signal, clock).then(() => woke = true);
  await clock.advance(59_999);
  assert.equal(woke, false);
  await clock.advance(1);
  await nap;
  assert.equal(woke, true);
});

Deno.test("withDeadline() on a fake clock rejects once the deadline passes", async () => {
  const clock = new FakeClock();
  const late = withDeadline(new Promise(() => {}), 5_000, "too slow", clock);
  const outcome = late.catch((error: Error) => error.message);
  await clock.advance(5_000);
  assert.equal(await outcome, "too slow");
});
