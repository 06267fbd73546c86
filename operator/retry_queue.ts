/**
 * Failed writes waiting for their retry, one timer per key, spaced by exponential backoff
 * with jitter ({@link backoffDelay}): a key that keeps failing, say on a permission denial,
 * is retried ever more slowly instead of in a hot loop, and a success starts it over — the
 * per-item rate limiting of controller-runtime's work queue.
 * @module
 */
import {
  backoffDelay,
  type BackoffPolicy,
  type Clock,
  DEFAULT_BACKOFF,
  type Timer,
} from "../core/mod.ts";

/** Options of {@link RetryQueue}. */
export interface RetryQueueOptions<T> {
  clock: Clock;
  /** Called with the item of a key whose backoff has passed: time to try it again. */
  onDue: (item: T) => void;
  /** @default DEFAULT_BACKOFF (100 ms doubling to 30 s, jitter 0.2) */
  policy?: BackoffPolicy;
  /** A number in [0, 1) for the jitter. @default Math.random */
  random?: () => number;
}

interface Entry<T> {
  failures: number;
  item: T;
  /** Set while the retry is waiting for its time. */
  timer: Timer | undefined;
}

/** Keys that failed, with their consecutive failure counts and pending retries. */
export class RetryQueue<T> {
  readonly #clock: Clock;
  readonly #onDue: (item: T) => void;
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry<T>>();

  constructor(options: RetryQueueOptions<T>) {
    this.#clock = options.clock;
    this.#onDue = options.onDue;
    this.#policy = options.policy ?? DEFAULT_BACKOFF;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Records one more failure of `key` and schedules `onDue(item)` after its backoff,
   * replacing a retry already pending.
   * @returns the failure count and the delay chosen, for the log
   */
  failed(key: string, item: T): { failures: number; delayMs: number } {
    const entry = this.#entries.get(key) ?? { failures: 0, item, timer: undefined };
    entry.failures++;
    entry.item = item;
    entry.timer?.cancel();
    const delayMs = backoffDelay(entry.failures, this.#random(), this.#policy);
    entry.timer = this.#clock.timer(delayMs, () => {
      entry.timer = undefined;
      this.#onDue(entry.item);
    });
    this.#entries.set(key, entry);
    return { failures: entry.failures, delayMs };
  }

  /** Whether `key` waits for its retry: writing it before then would defeat the backoff. */
  waiting(key: string): boolean {
    return this.#entries.get(key)?.timer !== undefined;
  }

  /** Whether `key` failed and has not succeeded since. */
  failing(key: string): boolean {
    return this.#entries.has(key);
  }

  /** A success, or a key no longer to write: its next failure starts the backoff over. */
  forget(key: string): void {
    this.#entries.get(key)?.timer?.cancel();
    this.#entries.delete(key);
  }

  /** Cancels every pending retry (the operator stops). */
  clear(): void {
    for (const entry of this.#entries.values()) entry.timer?.cancel();
    this.#entries.clear();
  }

  /** Keys that failed and have not succeeded since. */
  get size(): number {
    return this.#entries.size;
  }
}
