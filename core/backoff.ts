/**
 * How long to wait before retrying something that failed: exponential backoff with jitter,
 * like client-go's work queue. Pure: the caller brings the random number.
 * @module
 */

/** The spacing of retries after failures. */
export interface BackoffPolicy {
  /** Delay after the first failure. @default 100 */
  initialMs: number;
  /** The delay stops growing here. @default 30000 */
  maxMs: number;
  /** Each further failure multiplies the delay by this. @default 2 */
  factor: number;
  /**
   * Fraction of the delay taken off at random, so that keys that failed together do not
   * retry together: 0.2 spreads a delay d over [0.8·d, d]. Below 1 - 1/factor, each retry
   * still comes later than the one before (until the cap). @default 0.2
   */
  jitter: number;
}

/** 100 ms, doubling up to 30 s, less up to a fifth at random. */
export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 100,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.2,
};

/**
 * The delay before the next attempt after `failures` failures in a row.
 *
 * @param failures consecutive failures so far, at least 1
 * @param random a number in [0, 1), e.g. `Math.random()`
 * @returns milliseconds, never more than `policy.maxMs` nor less than
 *   `(1 - jitter)` of the un-jittered delay
 * @throws {RangeError} when `failures` is not a positive integer
 */
export function backoffDelay(
  failures: number,
  random: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  if (!Number.isInteger(failures) || failures < 1) {
    throw new RangeError(`Cannot compute a backoff: failures must be at least 1, got ${failures}`);
  }
  // Capped before it can overflow to Infinity for very long failure streaks.
  const exponent = Math.min(failures - 1, 64);
  const base = Math.min(policy.initialMs * policy.factor ** exponent, policy.maxMs);
  const r = Math.min(Math.max(random, 0), 1);
  return Math.round(base * (1 - policy.jitter * r));
}
