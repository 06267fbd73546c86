/**
 * `fleet exec` outcomes: the exit code the CLI takes from how the session ended, or what to
 * tell the person. Pure.
 * @module
 */
import type { SessionEnd } from "../core/device_sessions.ts";

/** The exit code of a command ended by Ctrl-C, as shells report it (128 + SIGINT). */
export const INTERRUPTED_EXIT_CODE = 130;

/** Exit with the code, or fail with the message. */
export type ExecOutcome = { exitCode: number } | { failure: string };

/** What the CLI does when `deviceId`'s exec session ended with `end`. */
export function execOutcome(deviceId: string, end: SessionEnd): ExecOutcome {
  if (end.exitCode !== undefined) return { exitCode: end.exitCode };
  switch (end.reason) {
    case "cancelled":
      return { exitCode: INTERRUPTED_EXIT_CODE };
    case "taken-over":
      return { failure: `your session on device ${deviceId} was taken over: ${end.message}` };
    case "going-away":
      return { failure: `device ${deviceId} ended the session: ${end.message}` };
    case "silent":
      return { failure: end.message };
    default:
      return { failure: `device ${deviceId} ended the session (${end.reason}): ${end.message}` };
  }
}
