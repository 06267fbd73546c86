/**
 * Gives back the V8 heap that a burst of work left behind: the agent's start-up, and later a
 * log or exec session, a reconnect or a large change of desired state. V8 keeps the pages it
 * grew for a burst until a compacting collection, which an idle process rarely runs. Ten
 * `fleet logs` sessions of 1.5 MB each left an agent 1.5 MB larger three minutes later; with
 * these checks, 0.4 MB larger.
 * @module
 */
import type { Clock, Timer } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { V8Heap } from "../adapters/v8_heap.ts";

/**
 * How long after its start the agent gives back the heap its start-up needed: long enough for
 * the first reconcile and the NATS catch-up on a slow device, short enough that an idle agent
 * does not keep those pages for hours.
 */
export const HEAP_SETTLE_MS = 30_000;

/** How often the heap is looked at once start-up has settled. */
export const HEAP_CHECK_MS = 60_000;

/**
 * Growth since the last compaction that is worth another one, a synchronous pause of about
 * 50 ms (twice that on a Pi). An idle agent's heap moves by less than 1 MB between checks.
 */
export const HEAP_GROWTH_BYTES = 2 * 1024 * 1024;

/** Whether a heap of `total` bytes, `afterLast` right after the last compaction, needs one. */
export function heapNeedsCompaction(total: number, afterLast: number): boolean {
  return total - afterLast >= HEAP_GROWTH_BYTES;
}

/** Options of {@link HeapKeeper}. */
export interface HeapKeeperOptions {
  heap: V8Heap;
  clock: Clock;
  log: Logger;
}

/**
 * Compacts the heap HEAP_SETTLE_MS after {@link start}, then whenever a check every
 * HEAP_CHECK_MS finds it grew by HEAP_GROWTH_BYTES since. Its timers never keep the process
 * alive; {@link stop} cancels them.
 */
export class HeapKeeper {
  readonly #o: HeapKeeperOptions;
  #timer: Timer | undefined;
  #afterLast = 0;
  #stopped = false;

  constructor(options: HeapKeeperOptions) {
    this.#o = options;
  }

  start(): void {
    this.#schedule(HEAP_SETTLE_MS, () => {
      if (this.#compact("Start-up settled")) this.#schedule(HEAP_CHECK_MS, () => this.#check());
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  #check(): void {
    if (heapNeedsCompaction(this.#o.heap.total(), this.#afterLast)) {
      this.#compact("Gave back the heap a burst of work left");
    }
    this.#schedule(HEAP_CHECK_MS, () => this.#check());
  }

  /** Compacts; false when V8's gc is not exposed, so there is nothing to keep checking. */
  #compact(what: string): boolean {
    const released = this.#o.heap.release();
    if (released === undefined) {
      this.#o.log.debug(
        "V8's gc is not exposed (--expose-gc): heap grown for a burst of work stays until V8 collects",
      );
      return false;
    }
    this.#afterLast = released.heapAfter;
    const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
    this.#o.log.debug(`${what}: V8 heap ${mb(released.heapBefore)} → ${mb(released.heapAfter)}`);
    return true;
  }

  #schedule(ms: number, fn: () => void): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.timer(ms, fn, { unref: true });
  }
}
