/** Abortable waiting, for the periodic loops of the agent and the operator. */

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
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
): Promise<void> {
  while (!signal.aborted) {
    await sleep(ms, signal);
    if (!signal.aborted) await fn();
  }
}
