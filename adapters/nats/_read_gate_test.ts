import assert from "node:assert/strict";
import { ReadGate } from "./_read_gate.ts";

Deno.test("ReadGate lets one holder in at a time, in arrival order", async () => {
  const gate = new ReadGate();
  const signal = new AbortController().signal;
  const order: string[] = [];
  const first = await gate.acquire(signal);
  assert.ok(first);
  const waiting = ["b", "c"].map(async (name) => {
    const release = await gate.acquire(signal);
    order.push(name);
    await Promise.resolve();
    release?.();
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, [], "nobody enters while the gate is held");
  first();
  first(); // a second release must not let two in
  await Promise.all(waiting);
  assert.deepEqual(order, ["b", "c"]);
});

Deno.test("ReadGate gives up waiting when the signal aborts", async () => {
  const gate = new ReadGate();
  const held = await gate.acquire(new AbortController().signal);
  const stop = new AbortController();
  const waiting = gate.acquire(stop.signal);
  stop.abort();
  assert.equal(await waiting, undefined);
  held?.();
  const again = await gate.acquire(new AbortController().signal);
  assert.ok(again, "an aborted waiter does not keep the gate");
});
