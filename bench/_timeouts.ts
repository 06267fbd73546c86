/**
 * A benchmark reports a wait that ran out as a figure ("TIMED OUT", `result=FAILED`) and goes on
 * measuring: the true-or-false forms of adapters/timers.ts' poll ({@link waitFor}) and deadline
 * ({@link withDeadline}).
 */
import { DeadlineError, waitFor, withDeadline } from "../adapters/timers.ts";

/** Whether `condition` holds within `timeoutMs`, checked every `intervalMs`. */
export async function heldWithin(
  condition: () => boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  try {
    return await waitFor("a benchmark's condition", condition, timeoutMs, intervalMs);
  } catch {
    return condition();
  }
}

/** Whether `work` is done within `ms`; its own failure passes through. */
export async function doneWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withDeadline(work, ms, `not done within ${ms} ms`);
    return true;
  } catch (error) {
    if (error instanceof DeadlineError) return false;
    throw error;
  }
}
