import assert from "node:assert/strict";
import { AsyncQueue } from "./_queue.ts";

Deno.test("AsyncQueue delivers items in order to a waiting and a late reader", async () => {
  const queue = new AsyncQueue<number>();
  const first = queue.next();
  queue.push(1);
  queue.push(2);
  queue.push(3);
  assert.deepEqual(await first, { done: false, value: 1 });
  assert.deepEqual(await queue.next(), { done: false, value: 2 });
  queue.close();
  queue.push(4); // ignored after close
  assert.deepEqual(await queue.next(), { done: false, value: 3 });
  assert.deepEqual(await queue.next(), { done: true });
});

Deno.test("AsyncQueue close(error) rejects the reader after the queued items", async () => {
  const queue = new AsyncQueue<string>();
  queue.push("a");
  queue.close(new Error("boom"));
  assert.deepEqual(await queue.next(), { done: false, value: "a" });
  await assert.rejects(queue.next(), /boom/);
  const waiting = new AsyncQueue<string>();
  const pending = waiting.next();
  waiting.close(new Error("later"));
  await assert.rejects(pending, /later/);
});

Deno.test("AsyncQueue keeps order across its internal compaction", async () => {
  const queue = new AsyncQueue<number>();
  for (let i = 0; i < 5000; i++) queue.push(i);
  for (let i = 0; i < 5000; i++) assert.deepEqual(await queue.next(), { done: false, value: i });
  assert.equal(queue.size, 0);
});
