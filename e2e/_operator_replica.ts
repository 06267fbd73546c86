/**
 * A `fleet operator run --leader-elect` replica as its own process, for the failover stories
 * of both deployment sources: its log lines go to the story's log, prefixed with its identity.
 */
import { fileURLToPath } from "node:url";
import type { Logger } from "../adapters/logger.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

export interface OperatorReplica extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** Set once the process has exited. */
  readonly exited: Deno.CommandStatus | undefined;
}

/** Starts `fleet operator run --leader-elect --identity <identity> ...args`. */
export function startOperatorReplica(
  identity: string,
  args: string[],
  log: Logger,
): OperatorReplica {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "operator",
      "run",
      "--leader-elect",
      "--identity",
      identity,
      "--log-level",
      "info",
      // The stories' deployments live in namespace default, which no admin binds.
      "--allow-unbound-namespaces",
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  void child.status.then((status) => exited = status);
  const logged = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) log.info(`[${identity}] ${line}`);
    }
    if (rest !== "") log.info(`[${identity}] ${rest}`);
  })();
  return {
    child,
    get exited() {
      return exited;
    },
    async [Symbol.asyncDispose]() {
      if (exited === undefined) {
        child.kill("SIGTERM");
        await child.status;
      }
      await logged;
    },
  };
}
