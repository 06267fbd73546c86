/**
 * The agent's own journal (`journalctl -u fleet-agent`), streamed, for `fleet logs --agent`.
 * @module
 */
import type { LogReadOptions } from "../../core/device_commands.ts";

/** The systemd unit the packaged agent runs as. */
export const AGENT_UNIT = "fleet-agent";

/** The journal cannot be read here; the message says why and what to do instead. */
export class JournalUnavailableError extends Error {
  override name = "JournalUnavailableError";
}

/** journalctl's arguments for `options`. */
export function journalArgs(options: LogReadOptions): string[] {
  return [
    "--unit",
    AGENT_UNIT,
    "--no-pager",
    "--output",
    options.timestamps ? "short-iso-precise" : "cat",
    ...(options.tail === undefined ? [] : ["--lines", String(options.tail)]),
    ...(options.sinceSeconds === undefined ? [] : ["--since", `@${options.sinceSeconds}`]),
    ...(options.follow ? ["--follow"] : []),
  ];
}

/**
 * journalctl's output for `options`; it stops when `signal` aborts. Read no faster than the
 * stream is (the pipe fills and journalctl waits).
 *
 * @throws {JournalUnavailableError} when journalctl is not installed or the agent may not run it.
 */
export function agentJournal(
  options: LogReadOptions,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("journalctl", {
      args: journalArgs(options),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return Promise.reject(
        new JournalUnavailableError("journalctl is not installed on this device"),
      );
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return Promise.reject(
        new JournalUnavailableError(
          "the agent may not run journalctl (its Deno permissions allow running no program); " +
            `on the device, run journalctl -u ${AGENT_UNIT}`,
        ),
      );
    }
    return Promise.reject(error);
  }
  // The exit status says nothing the output did not: it is reaped, not reported.
  void child.status;
  return Promise.resolve(child.stdout);
}
