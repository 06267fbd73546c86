import * as assert from "node:assert/strict";
import { FakeClock } from "../testing/fake_clock.ts";
import { silentLogger } from "../adapters/logger.ts";
import type { V8Heap } from "../adapters/v8_heap.ts";
import {
  HEAP_CHECK_MS,
  HEAP_GROWTH_BYTES,
  HEAP_SETTLE_MS,
  HeapKeeper,
  heapNeedsCompaction,
} from "./heap_keeper.ts";

const MB = 1024 * 1024;

Deno.test("heapNeedsCompaction() only once the heap grew by HEAP_GROWTH_BYTES since the last one", () => {
  assert.equal(heapNeedsCompaction(11 * MB, 11 * MB), false);
  assert.equal(heapNeedsCompaction(11 * MB + HEAP_GROWTH_BYTES - 1, 11 * MB), false);
  assert.equal(heapNeedsCompaction(11 * MB + HEAP_GROWTH_BYTES, 11 * MB), true);
  assert.equal(heapNeedsCompaction(20 * MB, 11 * MB), true);
  // A heap smaller than right after the last compaction (V8 shrank it itself) is left alone.
  assert.equal(heapNeedsCompaction(9 * MB, 11 * MB), false);
});

/** A heap whose size the test sets; a compaction brings it down to `compactsTo`. */
class TestHeap implements V8Heap {
  size = 15 * MB;
  compactsTo = 11 * MB;
  releases = 0;
  exposed = true;
  total(): number {
    return this.size;
  }
  release() {
    if (!this.exposed) return undefined;
    this.releases++;
    const heapBefore = this.size;
    this.size = this.compactsTo;
    return { heapBefore, heapAfter: this.size };
  }
}

function keeper(heap: V8Heap, clock: FakeClock): HeapKeeper {
  return new HeapKeeper({ heap, clock, log: silentLogger });
}

Deno.test("HeapKeeper compacts once start-up has settled, then only after a burst grew the heap", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  const k = keeper(heap, clock);
  k.start();
  try {
    await clock.advance(HEAP_SETTLE_MS - 1);
    assert.equal(heap.releases, 0, "not before start-up has settled");
    await clock.advance(1);
    assert.equal(heap.releases, 1);
    assert.equal(heap.size, 11 * MB);

    heap.size += HEAP_GROWTH_BYTES - 1; // idle drift
    await clock.advance(5 * HEAP_CHECK_MS);
    assert.equal(heap.releases, 1, "drift below HEAP_GROWTH_BYTES is left alone");

    heap.size = 14 * MB; // a log session, which leaves 1 MB live
    heap.compactsTo = 12 * MB;
    await clock.advance(HEAP_CHECK_MS - 1);
    assert.equal(heap.releases, 1, "seen at the next check, not before");
    await clock.advance(1);
    assert.equal(heap.releases, 2);

    heap.size = 12 * MB + HEAP_GROWTH_BYTES - 1;
    await clock.advance(HEAP_CHECK_MS);
    assert.equal(heap.releases, 2, "measured from the last compaction");
  } finally {
    k.stop();
  }
});

Deno.test("HeapKeeper stops checking when V8's gc is not exposed", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  heap.exposed = false;
  let totals = 0;
  const counting: V8Heap = {
    total: () => (totals++, heap.total()),
    release: () => heap.release(),
  };
  const k = keeper(counting, clock);
  k.start();
  await clock.advance(HEAP_SETTLE_MS + 10 * HEAP_CHECK_MS);
  assert.equal(totals, 0, "no checks without a way to compact");
  k.stop();
});

Deno.test("HeapKeeper.stop() cancels the pending compaction and every later check", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  const k = keeper(heap, clock);
  k.start();
  k.stop();
  await clock.advance(HEAP_SETTLE_MS + 10 * HEAP_CHECK_MS);
  assert.equal(heap.releases, 0);

  const after = keeper(heap, clock);
  after.start();
  await clock.advance(HEAP_SETTLE_MS);
  assert.equal(heap.releases, 1);
  after.stop();
  heap.size = 20 * MB;
  await clock.advance(10 * HEAP_CHECK_MS);
  assert.equal(heap.releases, 1, "no check after stop()");
});
