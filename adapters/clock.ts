/** The real {@link Clock}: `Date.now`, `performance.now` and `setTimeout`. */
import type { Clock, Timer } from "../core/clock.ts";

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  timer(ms: number, fn: () => void): Timer {
    const id = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(id) };
  },
};
