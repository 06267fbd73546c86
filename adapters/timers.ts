/**
 * Abortable waiting on a {@link Clock}, for the periodic loops of the agent and the operator;
 * the one poll ({@link waitFor}) and the one deadline ({@link withDeadline}) everything else uses.
 */
import type { Clock } from "../core/clock.ts";
import { systemClock } from "./clock.ts";

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = clock.timer(ms, done);
    function done() {
      timer.cancel();
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
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
  // The abort wakes the wait at hand. Racing each item against one promise that lives until
  // the abort would leave a reaction on it per item, each holding its item: a watch that runs
  // for months would keep every event it ever yielded.
  let wake: (() => void) | undefined;
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal.aborted) {
      const next = await new Promise<IteratorResult<T> | "aborted">((resolve, reject) => {
        wake = () => resolve("aborted");
        iterator.next().then(resolve, reject);
      });
      wake = undefined;
      if (next === "aborted" || next.done) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
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

/**
 * Polls `check` every `intervalMs` until it returns a value other than `undefined` or `false`,
 * or `timeoutMs` passes. A check that throws is tried again (its error is named if time runs
 * out); one that has not returned by then is abandoned (its signal aborts), so a read stuck on
 * a server that never answers fails the wait instead of hanging it.
 *
 * @param what what is waited for, for the message
 * @returns the check's value
 * @throws {Error} `Timed out after <timeoutMs> ms waiting for <what>` (and the last error).
 */
export async function waitFor<T>(
  what: string,
  check: (signal: AbortSignal) => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<T> {
  // A timer, not AbortSignal.timeout(): that one does not keep Deno's event loop alive, and a
  // stuck check may be all that is left.
  const expiry = new AbortController();
  const expired = expiry.signal;
  const timer = systemClock.timer(timeoutMs, () => expiry.abort());
  let lastError: unknown;
  let stuck = false;
  try {
    while (!expired.aborted) {
      try {
        const value = await abandonedOnAbort(Promise.resolve(check(expired)), expired);
        if (value === ABANDONED) stuck = true;
        else if (value !== undefined && value !== false) return value as T;
      } catch (error) {
        lastError = error;
      }
      await sleep(intervalMs, expired);
    }
  } finally {
    timer.cancel();
  }
  const detail = stuck
    ? " (the last check had not returned)"
    : lastError instanceof Error
    ? ` (last error: ${lastError.message})`
    : "";
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

const ABANDONED = Symbol("abandoned");

function abandonedOnAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T | typeof ABANDONED> {
  if (signal.aborted) return Promise.resolve(ABANDONED);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(ABANDONED);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
