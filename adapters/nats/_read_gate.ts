/**
 * One initial bucket read at a time per connection. Each read's push consumer may have up to
 * 32 MiB in flight (nats-server's flow-control window); several at once on one connection can
 * exceed the 64 MiB the server buffers for a client that pauses for a moment (a GC, a burst of
 * work), and the server then drops the connection as a slow consumer, which restarts every
 * read: at 100,000 devices an operator restart never converged. Private to the NATS adapter.
 */
import type { NatsConnection } from "@nats-io/nats-core";

const gates = new WeakMap<NatsConnection, ReadGate>();

/** The gate shared by every watch on `nc`. */
export function readGateOf(nc: NatsConnection): ReadGate {
  let gate = gates.get(nc);
  if (!gate) gates.set(nc, gate = new ReadGate());
  return gate;
}

/** A FIFO mutex whose release is idempotent. */
export class ReadGate {
  #held = false;
  #waiters: (() => void)[] = [];

  /** Resolves with the release function once the gate is ours, or undefined on abort. */
  async acquire(signal: AbortSignal): Promise<(() => void) | undefined> {
    while (this.#held) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          this.#waiters = this.#waiters.filter((w) => w !== wake);
          resolve();
        };
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        this.#waiters.push(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
    if (signal.aborted) return undefined;
    this.#held = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held = false;
      this.#waiters.shift()?.();
    };
  }
}
