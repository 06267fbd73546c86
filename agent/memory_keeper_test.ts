import * as assert from "node:assert/strict";
import { FakeClock } from "../testing/fake_clock.ts";
import { captureLogger } from "../testing/nats.ts";
import type { V8Heap } from "../adapters/v8_heap.ts";
import { type CodePages, CodePagesError } from "../adapters/code_pages.ts";
import {
  HEAP_CHECK_MS,
  HEAP_GROWTH_BYTES,
  heapNeedsCompaction,
  MEMORY_SETTLE_MS,
  MemoryKeeper,
} from "./memory_keeper.ts";

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

/** Code pages that count their releases and fail while `refuse` is set. */
class TestCode implements CodePages {
  releases = 0;
  refuse = false;
  release(): number {
    if (this.refuse) throw new CodePagesError("no GNU C library at /usr/lib/x.so");
    this.releases++;
    return 20 * MB;
  }
}

function keeper(heap: V8Heap, clock: FakeClock, code = new TestCode()) {
  const { logger, lines } = captureLogger("debug");
  return { k: new MemoryKeeper({ heap, code, clock, log: logger }), lines, code };
}

Deno.test("MemoryKeeper gives back heap and code pages once start-up has settled, then only after a burst grew the heap", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  const { k, code, lines } = keeper(heap, clock);
  k.start();
  try {
    await clock.advance(MEMORY_SETTLE_MS - 1);
    assert.deepEqual([heap.releases, code.releases], [0, 0], "not before start-up has settled");
    await clock.advance(1);
    assert.deepEqual([heap.releases, code.releases], [1, 1]);
    assert.equal(heap.size, 11 * MB);
    assert.deepEqual(lines, [
      "INFO  Gave back the memory start-up needed: 20.0 MB of code pages (read back when used again); V8 heap 15.0 MB → 11.0 MB",
    ]);

    heap.size += HEAP_GROWTH_BYTES - 1; // idle drift
    await clock.advance(5 * HEAP_CHECK_MS);
    assert.deepEqual([heap.releases, code.releases], [1, 1], "drift below HEAP_GROWTH_BYTES");

    heap.size = 14 * MB; // a log session, which leaves 1 MB live
    heap.compactsTo = 12 * MB;
    await clock.advance(HEAP_CHECK_MS - 1);
    assert.equal(heap.releases, 1, "seen at the next check, not before");
    await clock.advance(1);
    assert.deepEqual([heap.releases, code.releases], [2, 2], "the burst's code pages go too");

    heap.size = 12 * MB + HEAP_GROWTH_BYTES - 1;
    await clock.advance(HEAP_CHECK_MS);
    assert.equal(heap.releases, 2, "measured from the last compaction");
  } finally {
    k.stop();
  }
});

Deno.test("MemoryKeeper keeps the code pages, says why once, and goes on compacting when it cannot give them back", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  const code = new TestCode();
  code.refuse = true;
  const { k, lines } = keeper(heap, clock, code);
  k.start();
  try {
    await clock.advance(MEMORY_SETTLE_MS);
    assert.deepEqual(lines, [
      "INFO  Keeping the runtime's start-up code in memory (about 20 MB): no GNU C library at /usr/lib/x.so",
      "INFO  Gave back the memory start-up needed: code pages kept; V8 heap 15.0 MB → 11.0 MB",
    ]);
    code.refuse = false;
    heap.size = 14 * MB;
    await clock.advance(HEAP_CHECK_MS);
    assert.equal(heap.releases, 2);
    assert.equal(code.releases, 0, "not tried again");
    assert.deepEqual(lines.slice(2), [
      "DEBUG Gave back the memory a burst of work left: code pages kept; V8 heap 14.0 MB → 11.0 MB",
    ]);
  } finally {
    k.stop();
  }
});

Deno.test("MemoryKeeper gives back the code pages once and stops checking when V8's gc is not exposed", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  heap.exposed = false;
  let totals = 0;
  const counting: V8Heap = {
    total: () => (totals++, heap.total()),
    release: () => heap.release(),
  };
  const { k, code, lines } = keeper(counting, clock);
  k.start();
  await clock.advance(MEMORY_SETTLE_MS + 10 * HEAP_CHECK_MS);
  assert.equal(totals, 0, "no checks without a way to compact");
  assert.equal(code.releases, 1);
  assert.deepEqual(lines, [
    "INFO  Gave back the memory start-up needed: 20.0 MB of code pages (read back when used again); V8 heap left to V8 (its gc is not exposed: no --expose-gc)",
  ]);
  k.stop();
});

Deno.test("MemoryKeeper.stop() cancels the pending release and every later check", async () => {
  const clock = new FakeClock(0);
  const heap = new TestHeap();
  const first = keeper(heap, clock);
  first.k.start();
  first.k.stop();
  await clock.advance(MEMORY_SETTLE_MS + 10 * HEAP_CHECK_MS);
  assert.deepEqual([heap.releases, first.code.releases], [0, 0]);

  const after = keeper(heap, clock);
  after.k.start();
  await clock.advance(MEMORY_SETTLE_MS);
  assert.equal(heap.releases, 1);
  after.k.stop();
  heap.size = 20 * MB;
  await clock.advance(10 * HEAP_CHECK_MS);
  assert.deepEqual([heap.releases, after.code.releases], [1, 1], "no check after stop()");
});
