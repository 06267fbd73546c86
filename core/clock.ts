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

/** Options of {@link Clock.timer}. */
export interface TimerOptions {
  /**
   * The pending timer does not keep the process alive: for background work such as a token
   * renewal, which must not hold up the exit of a command that is done.
   * @default false
   */
  unref?: boolean;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch: timestamps people read, token expiry. */
  now(): number;
  /** Monotonic milliseconds: intervals and spacing, immune to wall-clock steps. */
  monotonic(): number;
  /** Calls `fn` once after `ms`. */
  timer(ms: number, fn: () => void, options?: TimerOptions): Timer;
}
