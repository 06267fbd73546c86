/**
 * A {@link Clock} that moves only when a test says so: `advance(ms)` fires every timer that
 * falls due, in order, letting the promise jobs each one starts run before the next.
 */
import type { Clock, Timer } from "../core/clock.ts";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  #now: number;
  #mono = 0;
  #seq = 0;
  #pending: Pending[] = [];

  /** @param start wall-clock ms at the start @default 2026-01-01T00:00:00Z */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  monotonic(): number {
    return this.#mono;
  }

  timer(ms: number, fn: () => void): Timer {
    const entry = { at: this.#mono + Math.max(0, ms), seq: this.#seq++, fn };
    this.#pending.push(entry);
    return { cancel: () => this.#pending = this.#pending.filter((p) => p !== entry) };
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.#pending.length;
  }

  /**
   * Steps the wall clock alone by `ms` (either way), as NTP does, or a resume from suspend
   * (the monotonic clock stands still while a machine sleeps): no timer fires.
   */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Moves time forward by `ms`, firing due timers in order (and those they set, if due). */
  async advance(ms: number): Promise<void> {
    const end = this.#mono + ms;
    await settle();
    while (true) {
      const next = this.#pending
        .filter((p) => p.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.#pending = this.#pending.filter((p) => p !== next);
      this.#now += next.at - this.#mono;
      this.#mono = next.at;
      next.fn();
      await settle();
    }
    this.#now += end - this.#mono;
    this.#mono = end;
    await settle();
  }
}

/** Lets queued promise jobs (and what they chain) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
}
