/**
 * Time as a port: everything that waits, times out or judges an age takes a {@link Clock},
 * so tests of expiry, grace periods and staleness drive a fake one instead of sleeping.
 * The system clock is in `adapters/clock.ts`; the fake one in `testing/fake_clock.ts`.
 * @module
 */

/** A pending timer of a {@link Clock}; cancelling it twice is harmless. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch: timestamps people read, token expiry. */
  now(): number;
  /** Monotonic milliseconds: intervals and spacing, immune to wall-clock steps. */
  monotonic(): number;
  /** Calls `fn` once after `ms`. */
  timer(ms: number, fn: () => void): Timer;
}
