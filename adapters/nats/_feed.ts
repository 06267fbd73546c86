/**
 * What the bucket watch (`kv_watch.ts`) and the device's desired-state feed
 * (`device_feed.ts`) share: a queue of events and restart marks handed to the caller in
 * order, and the paced, quietly logged retries of opening a consumer. Private to the NATS
 * adapter.
 */
import type { Clock } from "../../core/clock.ts";
import type { Logger } from "../logger.ts";
import { sleep } from "../timers.ts";
import { AsyncQueue } from "./_queue.ts";

/** An event for the caller, or a restart mark passed to its callback in order with them. */
export type FeedItem<E, R> = { kind: "event"; event: E } | { kind: "restart"; restart: R };

/** Something that fills a queue from NATS once started, until stopped. */
export interface Feed<E, R> {
  readonly onRestart: ((restart: R) => void) | undefined;
  start(): AsyncQueue<FeedItem<E, R>>;
  stop(): void;
}

/**
 * A feed whose `run()` fills the queue until the signal aborts: `start()` runs it and ends the
 * queue after it (with `fatal` if set, or the failure `run()` rejected with, as `failure()`
 * words it); `stop()` ends it when the caller leaves its loop without aborting.
 */
export abstract class QueueFeed<E, R> implements Feed<E, R> {
  readonly onRestart: ((restart: R) => void) | undefined;
  protected readonly queue = new AsyncQueue<FeedItem<E, R>>();
  protected readonly signal: AbortSignal;
  /** Set when the feed cannot go on; the iteration throws it after the queued events. */
  protected fatal: Error | undefined;
  readonly #stopper = new AbortController();

  constructor(signal: AbortSignal, onRestart: ((restart: R) => void) | undefined) {
    this.onRestart = onRestart;
    this.signal = AbortSignal.any([signal, this.#stopper.signal]);
  }

  start(): AsyncQueue<FeedItem<E, R>> {
    // End the iteration at once on abort, even while a request to NATS is still pending.
    this.signal.addEventListener("abort", () => this.queue.close(), { once: true });
    this.run().then(
      () => this.queue.close(this.fatal),
      (err: unknown) => this.queue.close(this.failure(err)),
    );
    return this.queue;
  }

  stop(): void {
    this.#stopper.abort();
    this.queue.close();
  }

  protected abstract run(): Promise<void>;
  /** The error the iteration ends with when `run()` rejected with `err`. */
  protected abstract failure(err: unknown): Error;
}

/** Yields the feed's events, calling `onRestart` for its marks; leaving the loop stops it. */
export async function* drainFeed<E, R>(feed: Feed<E, R>): AsyncGenerator<E, void, undefined> {
  const queue = feed.start();
  try {
    while (true) {
      const next = await queue.next();
      if (next.done) return;
      const item = next.value;
      if (item.kind === "restart") feed.onRestart?.(item.restart);
      else yield item.event;
    }
  } finally {
    feed.stop();
  }
}

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 5_000;

/** The pause before attempt `attempt + 1`: 1 s doubling to 5 s. */
export function retryDelayMs(attempt: number): number {
  return Math.min(RETRY_MIN_MS * 2 ** (attempt - 1), RETRY_MAX_MS);
}

/** The failed attempts at opening one consumer: each logged sparingly, then a pause. */
export class OpenRetries {
  readonly #log: Logger;
  readonly #signal: AbortSignal;
  readonly #clock: Clock;
  #lastProblem = "";

  constructor(log: Logger, signal: AbortSignal, clock: Clock) {
    this.#log = log;
    this.#signal = signal;
    this.#clock = clock;
  }

  /** Whether an attempt failed since the last success. */
  get failing(): boolean {
    return this.#lastProblem !== "";
  }

  /**
   * Logs `problem` the first time and when the cause changes, then at attempts 2^n only, and
   * waits before the next attempt (at once when the signal aborts).
   */
  async failed(problem: string, attempt: number): Promise<void> {
    if (problem !== this.#lastProblem || (attempt & (attempt - 1)) === 0) {
      this.#log.warn(problem, { attempt });
    }
    this.#lastProblem = problem;
    await sleep(retryDelayMs(attempt), this.#signal, this.#clock);
  }
}

/** How one subscription ends, decided once: whatever happens after the first decision is ignored. */
export class Ending<T> {
  readonly done: Promise<T>;
  #settle: (value: T) => void = () => {};
  #open = true;

  constructor() {
    this.done = new Promise<T>((resolve) => this.#settle = resolve);
  }

  /** Whether no end was decided yet. */
  get open(): boolean {
    return this.#open;
  }

  decide(value: T): void {
    if (!this.#open) return;
    this.#open = false;
    this.#settle(value);
  }
}
