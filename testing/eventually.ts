/**
 * kubebuilder's `Eventually` for tests: {@link waitFor} at a test's pace, a check every 20 ms
 * (tests check memory, a log or a local server) for at most 15 s unless told otherwise.
 */
import { waitFor } from "../adapters/timers.ts";

/**
 * Polls `check` until it returns true or a value (not undefined), or fails naming `what`.
 *
 * @returns the check's value
 * @throws {Error} `Timed out after <timeoutMs> ms waiting for <what>` (and the last error).
 */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
): Promise<T> {
  return waitFor(what, check, timeoutMs, 20);
}
