/** The real {@link Clock}: `Date.now`, `performance.now` and `setTimeout`. */
import type { Clock, Timer, TimerOptions } from "../core/clock.ts";

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  timer(ms: number, fn: () => void, options?: TimerOptions): Timer {
    const id = setTimeout(fn, ms);
    if (options?.unref) Deno.unrefTimer(id);
    return { cancel: () => clearTimeout(id) };
  },
};
