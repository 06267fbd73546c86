/**
 * A minimal unbounded FIFO that a synchronous producer (a NATS callback) fills and one
 * async consumer drains in order. Private to the NATS adapter.
 */

/** What `next()` yields: a value, or the end of the queue. */
export type QueueResult<T> = { done: false; value: T } | { done: true };

/** FIFO with one async reader; see the module doc. */
export class AsyncQueue<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((result: QueueResult<T>) => void) | undefined;
  #failWaiter: ((err: unknown) => void) | undefined;
  #closed = false;
  #error: { err: unknown } | undefined;

  /** Number of items waiting to be taken. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds an item; ignored after `close()` so late callbacks cannot resurrect the queue. */
  push(item: T): void {
    if (this.#closed) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#clearWaiter();
      waiter({ done: false, value: item });
      return;
    }
    this.#items.push(item);
  }

  /**
   * Ends the queue: items already pushed are still delivered, then `next()` reports the end,
   * or rejects with `error` when one is given.
   */
  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    if (error !== undefined) this.#error = { err: error };
    if (this.size === 0) this.#settleEnd();
  }

  /** The next item, waiting for one if the queue is empty. Only one caller may wait. */
  next(): Promise<QueueResult<T>> {
    if (this.#waiter) {
      return Promise.reject(new Error("AsyncQueue.next() called while another call waits"));
    }
    if (this.size > 0) {
      const value = this.#items[this.#head] as T;
      this.#head++;
      // Compact now and then so a long-lived queue does not keep every item it has seen.
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#closed) {
      return this.#error ? Promise.reject(this.#error.err) : Promise.resolve({ done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failWaiter = reject;
    });
  }

  #settleEnd(): void {
    const waiter = this.#waiter;
    const fail = this.#failWaiter;
    this.#clearWaiter();
    if (this.#error && fail) fail(this.#error.err);
    else waiter?.({ done: true });
  }

  #clearWaiter(): void {
    this.#waiter = undefined;
    this.#failWaiter = undefined;
  }
}
