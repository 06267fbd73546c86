/** Abortable waiting on a {@link Clock}, for the periodic loops of the agent and the operator. */
import type { Clock } from "../core/clock.ts";
import { systemClock } from "./clock.ts";

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.timer(ms, done);
    function done() {
      timer.cancel();
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** Runs `fn` every `ms` (after each run completes) until `signal` aborts. */
export async function every(
  ms: number,
  signal: AbortSignal,
  fn: () => Promise<void> | void,
  clock: Clock = systemClock,
): Promise<void> {
  while (!signal.aborted) {
    await sleep(ms, signal, clock);
    if (!signal.aborted) await fn();
  }
}

/**
 * Iterates `source` until it ends or `signal` aborts, whichever comes first: a source
 * blocked in a read (a network stream) cannot hold up a shutdown.
 */
export async function* untilAborted<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const aborted = new Promise<"aborted">((resolve) => {
    if (signal.aborted) resolve("aborted");
    signal.addEventListener("abort", () => resolve("aborted"), { once: true });
  });
  try {
    while (true) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next === "aborted" || next.done) return;
      yield next.value;
    }
  } finally {
    // Not awaited: the source may be stuck; it is told to stop and left to finish.
    void iterator.return?.()?.catch(() => {});
  }
}

/** Rejected by {@link withDeadline} when the work is not done in time. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * Settles like `work`, or rejects with a {@link DeadlineError} carrying `message` once `ms`
 * pass first. The work itself goes on (nothing can cancel a promise): the caller decides what
 * to stop. The timer keeps the event loop alive, unlike `AbortSignal.timeout()`.
 */
export function withDeadline<T>(
  work: PromiseLike<T>,
  ms: number,
  message: string,
  clock: Clock = systemClock,
): Promise<T> {
  let timer: { cancel(): void } | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = clock.timer(ms, () => reject(new DeadlineError(message)));
  });
  return Promise.race([work, late]).finally(() => timer?.cancel());
}
