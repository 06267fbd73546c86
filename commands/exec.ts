/**
 * `fleet exec`: a command in a deployment's container on a device (or, where the device allows
 * it, on the device itself), over a session with the device (DESIGN.md §9 "Sessions"). Its
 * output comes back on stdout and stderr, stdin goes to it with `-i`, a terminal with `-t`
 * (raw, resized with the window, Ctrl-C typed into it), and its exit code is the CLI's.
 */
import { Command, type CommandUnknownOpts, Option } from "@commander-js/extra-typings";
import { MIN_CREDIT, newSessionId, type TerminalSize, validateIdentifier } from "../core/mod.ts";
import { FleetError } from "../core/errors.ts";
import { systemClock } from "../adapters/clock.ts";
import { SessionClient, type SessionEvent } from "../adapters/nats/session_client.ts";
import { writeErr, writeOut } from "../adapters/output.ts";
import { execOutcome, INTERRUPTED_EXIT_CODE } from "../cli/exec.ts";
import { askDevice, deploymentTarget, principalOf } from "./_device_commands.ts";
import {
  connectFromFlags,
  integerParser,
  loggerFrom,
  namespaceOption,
  UsageError,
  withNatsClient,
} from "./_cli.ts";

/** Output bytes the device may send ahead of what was written out. */
const WINDOW = 4 * MIN_CREDIT;

/** `fleet exec`. */
export function execCommand(): CommandUnknownOpts {
  return withNatsClient(
    new Command("exec")
      .description("Run a command in a deployment's container on a device, or a shell on it")
      .argument("<device>", "the device")
      .argument(
        "[target-and-command...]",
        "DEPLOYMENT[/SERVICE] (none with --host), then -- and the command",
      )
      .addOption(namespaceOption("the deployment's namespace").default("default"))
      .addOption(
        new Option("-i, --stdin", "send this terminal's input to the command")
          .env("FLEET_EXEC_STDIN"),
      )
      .addOption(
        new Option("-t, --tty", "give the command a terminal (with -i: an interactive shell)")
          .env("FLEET_EXEC_TTY"),
      )
      .addOption(
        new Option("--host", "on the device itself, outside every container (if it allows)")
          .env("FLEET_EXEC_HOST"),
      )
      .addOption(
        new Option("--force", "take over the device's interactive session from whoever has it")
          .env("FLEET_EXEC_FORCE"),
      )
      .addOption(
        new Option("--timeout <seconds>", "how long to wait for the device to accept")
          .argParser(integerParser("--timeout", 1, 3600)).default(10).env("FLEET_EXEC_TIMEOUT"),
      )
      .addHelpText(
        "after",
        `
Needs the admin role. Put the command after --, so that its own options are not taken for
fleet's. The exit code is the command's. A device runs exec only while its config leaves
[remote] exec = true (the default), and a shell on its host only with [remote] host_shell = true.
One interactive session (-t) at a time per device: --force takes it over, and its user is told.

Examples:
  fleet exec pi-lab-7 web -- cat /etc/os-release
  fleet exec pi-lab-7 -n shop web/db -it -- sh
  fleet exec pi-lab-7 --host -it -- bash`,
      ),
  ).action(async (deviceId, words, flags) => {
    validateIdentifier("device id", deviceId);
    validateIdentifier("namespace", flags.namespace);
    const host = flags.host === true;
    const [target, command] = host ? [undefined, words] : [words[0], words.slice(1)];
    if (!host && target === undefined) {
      throw new UsageError(
        "Give the deployment, then the command after --, e.g. fleet exec pi-1 web -- sh " +
          "(or --host for a shell on the device itself)",
      );
    }
    if (command.length === 0) {
      throw new UsageError("Give the command to run after --, e.g. fleet exec pi-1 web -- sh");
    }
    const where = host
      ? { host: true }
      : { namespace: flags.namespace, ...deploymentTarget(target!, "before --, or --host") };
    const tty = flags.tty === true;
    const stdin = flags.stdin === true;
    const log = loggerFrom(flags);
    const nc = await connectFromFlags(flags, log);
    try {
      const principal = principalOf(nc);
      const sessionId = newSessionId();
      const client = new SessionClient(nc, {
        deviceId,
        principal,
        sessionId,
        window: WINDOW,
        clock: systemClock,
      });
      const events = client.events();
      const size = tty ? terminalSize() : undefined;
      let accepted;
      try {
        accepted = await askDevice(nc, deviceId, "exec", {
          requestId: crypto.randomUUID(),
          sessionId,
          credit: WINDOW,
          command,
          ...where,
          ...(tty ? { tty: true } : {}),
          ...(stdin ? { stdin: true } : {}),
          ...(size ? { size } : {}),
          ...(flags.force ? { force: true } : {}),
        }, flags.timeout * 1000);
      } catch (error) {
        client.close();
        throw error;
      }
      if (accepted.result.tookOver) {
        log.warn(`Took over session ${accepted.result.tookOver} on device ${deviceId}`);
      }
      if (stdin) client.startStdin(accepted.result.stdinCredit);
      Deno.exitCode = await run(deviceId, client, events, { tty, stdin });
    } finally {
      await nc.close();
    }
  });
}

/** This terminal's size; none when stdout is not a terminal. */
function terminalSize(): TerminalSize | undefined {
  try {
    const { columns, rows } = Deno.consoleSize();
    return columns > 0 && rows > 0 ? { rows, cols: columns } : undefined;
  } catch {
    return undefined; // not a terminal: the device's default size
  }
}

/**
 * Runs the session: output to stdout and stderr, stdin and the window's size to the device,
 * until it ends. Returns the exit code.
 * @throws {FleetError} when it ended without the command's exit code (taken over, device gone)
 */
async function run(
  deviceId: string,
  client: SessionClient,
  events: AsyncGenerator<SessionEvent>,
  mode: { tty: boolean; stdin: boolean },
): Promise<number> {
  const raw = mode.tty && mode.stdin && Deno.stdin.isTerminal();
  // In raw mode Ctrl-C is a byte for the remote terminal; otherwise it ends the session.
  const onInterrupt = () => client.cancel();
  const onResize = () => {
    const size = terminalSize();
    if (size) client.resize(size);
  };
  if (raw) Deno.stdin.setRaw(true);
  else Deno.addSignalListener("SIGINT", onInterrupt);
  if (mode.tty) Deno.addSignalListener("SIGWINCH", onResize);
  const input = mode.stdin ? Deno.stdin.readable.getReader() : undefined;
  const pumping = input ? pumpStdin(input, client) : Promise.resolve();
  try {
    for await (const event of events) {
      if ("data" in event) {
        if (event.stream === "stderr") await writeErr(event.data);
        else await writeOut(event.data);
        client.consumed(event.data.length);
      } else if ("notice" in event) {
        await writeErr(new TextEncoder().encode(`\r\nfleet: ${event.notice}\r\n`));
      } else {
        const outcome = execOutcome(deviceId, event.end);
        if ("failure" in outcome) throw new FleetError("failure", outcome.failure);
        return outcome.exitCode;
      }
    }
    return INTERRUPTED_EXIT_CODE;
  } finally {
    if (raw) Deno.stdin.setRaw(false);
    else Deno.removeSignalListener("SIGINT", onInterrupt);
    if (mode.tty) Deno.removeSignalListener("SIGWINCH", onResize);
    client.close();
    // A read of a terminal cannot be taken back: cancelling lets the process end meanwhile.
    await input?.cancel();
    await pumping;
  }
}

/** Sends stdin to the device as its credit allows, then its end. */
async function pumpStdin(
  input: ReadableStreamDefaultReader<Uint8Array>,
  client: SessionClient,
): Promise<void> {
  while (true) {
    const { value, done } = await input.read();
    if (done) return client.closeStdin();
    if (!await client.sendStdin(value)) return;
  }
}
