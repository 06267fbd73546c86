/**
 * Gives back the memory that a burst of work left behind: the agent's start-up, and later a
 * log or exec session, a reconnect or a large change of desired state.
 *
 * - V8 keeps the heap pages it grew for a burst until a compacting collection, which an idle
 *   process rarely runs. Ten `fleet logs` sessions of 1.5 MB each left an agent 1.5 MB larger
 *   three minutes later; with these checks, 0.4 MB larger.
 * - The pages of the runtime's code and read-only data that start-up read stay resident until
 *   the kernel needs memory. Giving them back took an idle agent with 10 deployments from
 *   57 MB to 38 MB resident (bench:agent); it touches about 17 MB of them again.
 * @module
 */
import { type Clock, errorMessage, type Timer } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { V8Heap } from "../adapters/v8_heap.ts";
import type { CodePages } from "../adapters/code_pages.ts";

/**
 * How long after its start the agent gives back what its start-up needed: long enough for
 * the first reconcile and the NATS catch-up on a slow device, short enough that an idle agent
 * does not keep those pages for hours.
 */
export const MEMORY_SETTLE_MS = 30_000;

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

/** Options of {@link MemoryKeeper}. */
export interface MemoryKeeperOptions {
  heap: V8Heap;
  code: CodePages;
  clock: Clock;
  log: Logger;
}

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

/**
 * MEMORY_SETTLE_MS after {@link start}, compacts the heap and gives back the code pages; then
 * does both again whenever a check every HEAP_CHECK_MS finds that the heap grew by
 * HEAP_GROWTH_BYTES since, the mark of a burst. Its timers never keep the process alive;
 * {@link stop} cancels them.
 */
export class MemoryKeeper {
  readonly #o: MemoryKeeperOptions;
  #timer: Timer | undefined;
  #afterLast = 0;
  #codeRefused = false;
  #stopped = false;

  constructor(options: MemoryKeeperOptions) {
    this.#o = options;
  }

  start(): void {
    this.#schedule(MEMORY_SETTLE_MS, () => {
      if (this.#release("info", "Gave back the memory start-up needed")) {
        this.#schedule(HEAP_CHECK_MS, () => this.#check());
      }
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  #check(): void {
    if (heapNeedsCompaction(this.#o.heap.total(), this.#afterLast)) {
      this.#release("debug", "Gave back the memory a burst of work left");
    }
    this.#schedule(HEAP_CHECK_MS, () => this.#check());
  }

  /**
   * Gives back the code pages and compacts the heap, and logs what it did at `level`; false
   * when V8's gc is not exposed, so there is no growth to check for.
   */
  #release(level: "info" | "debug", what: string): boolean {
    const code = this.#releaseCode();
    const heap = this.#o.heap.release();
    if (heap) this.#afterLast = heap.heapAfter;
    this.#o.log[level](
      `${what}: ${code}; ${
        heap
          ? `V8 heap ${mb(heap.heapBefore)} → ${mb(heap.heapAfter)}`
          : "V8 heap left to V8 (its gc is not exposed: no --expose-gc)"
      }`,
    );
    return heap !== undefined;
  }

  /** Gives back the code pages, unless that failed before; says what it did, for the log. */
  #releaseCode(): string {
    if (this.#codeRefused) return "code pages kept";
    try {
      return `${mb(this.#o.code.release())} of code pages (read back when used again)`;
    } catch (error) {
      // Harmless to run without: the kernel reclaims these pages itself when memory runs low.
      this.#codeRefused = true;
      this.#o.log.info(
        `Keeping the runtime's start-up code in memory (about 20 MB): ${errorMessage(error)}`,
      );
      return "code pages kept";
    }
  }

  #schedule(ms: number, fn: () => void): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.timer(ms, fn, { unref: true });
  }
}
