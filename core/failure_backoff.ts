/**
 * When the agent tries a failing deployment again: a deployment whose actions fail on the
 * device (image pull, create, start) or whose containers crash-loop waits out an exponential
 * backoff with jitter before its next attempt, so a registry sees at most one pull per
 * interval and a broken container is not restarted in a hot loop. Per deployment, reset by
 * a new generation or by success (the caller drops the state). Pure: the monotonic time and
 * the random number come in.
 * @module
 */
import { backoffDelay, type BackoffPolicy } from "./backoff.ts";
import { LAST_ERROR_MAX } from "./deployment_state.ts";

/** 10 s doubling to 5 min, less up to a fifth at random. */
export const FAILURE_BACKOFF: BackoffPolicy = {
  initialMs: 10_000,
  maxMs: 300_000,
  factor: 2,
  jitter: 0.2,
};

/** One deployment's failure streak. */
export interface FailureBackoff {
  /** The generation that failed; a new one starts afresh. */
  generation: number;
  /** Failures in a row, from 1. */
  attempt: number;
  /** Monotonic ms before which the deployment gets no actions. */
  nextTryAt: number;
  /** For `lastError`: what failed, the attempt and when the next try is; fixed per failure. */
  message: string;
}

/** What failed: a one-line description and, for a container, its last output. */
export interface FailureCause {
  what: string;
  output?: string;
}

/** The streak of `generation`, or undefined when `state` belongs to an earlier one. */
export function currentFailure(
  state: FailureBackoff | undefined,
  generation: number,
): FailureBackoff | undefined {
  return state?.generation === generation ? state : undefined;
}

/** Whether a deployment at `generation` must wait at monotonic time `now`. */
export function isBackingOff(
  state: FailureBackoff | undefined,
  generation: number,
  now: number,
): boolean {
  const current = currentFailure(state, generation);
  return current !== undefined && now < current.nextTryAt;
}

/**
 * The streak after one more failure at monotonic time `now`.
 * @param random a number in [0, 1), e.g. `Math.random()`
 */
export function recordFailure(
  previous: FailureBackoff | undefined,
  generation: number,
  cause: FailureCause,
  now: number,
  random: number,
  policy: BackoffPolicy = FAILURE_BACKOFF,
): FailureBackoff {
  const attempt = (currentFailure(previous, generation)?.attempt ?? 0) + 1;
  const delay = backoffDelay(attempt, random, policy);
  return {
    generation,
    attempt,
    nextTryAt: now + delay,
    message: failureMessage(cause, attempt, delay),
  };
}

/**
 * `<what>; last output: <output>; attempt <n>, next in <s> s` in at most LAST_ERROR_MAX
 * characters: the output loses its beginning first (its last lines say most), then `what`
 * its end; the attempt and the next try always fit.
 */
export function failureMessage(cause: FailureCause, attempt: number, delayMs: number): string {
  const suffix = `; attempt ${attempt}, next in ${Math.ceil(delayMs / 1000)} s`;
  const what = oneLine(cause.what);
  const output = oneLine(cause.output ?? "");
  const label = "; last output: ";
  let room = LAST_ERROR_MAX - suffix.length - what.length;
  if (output !== "" && room > label.length + 1) {
    room -= label.length;
    const tail = output.length <= room ? output : `…${output.slice(output.length - room + 1)}`;
    return `${what}${label}${tail}${suffix}`;
  }
  room = LAST_ERROR_MAX - suffix.length;
  return `${what.length <= room ? what : `${what.slice(0, room - 1)}…`}${suffix}`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
