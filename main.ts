/**
 * `fleet`: one program for the control plane, the device agent and the CLI.
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import denoJson from "./deno.json" with { type: "json" };
import { createLogger } from "./adapters/logger.ts";
import { agentCommand } from "./commands/agent.ts";
import { operatorCommand } from "./commands/operator.ts";
import { applyCommand } from "./commands/apply.ts";
import { deleteCommand } from "./commands/delete.ts";
import { getCommand } from "./commands/get.ts";
import { demoCommand } from "./commands/demo.ts";
import { calloutCommand } from "./commands/callout.ts";
import { benchCommand } from "./bench/main.ts";
import { vmCommand } from "./commands/vm.ts";
import { deviceCommand } from "./commands/device.ts";
import { ExitCode, isUsageError } from "./commands/_cli.ts";

export const VERSION: string = denoJson.version;

function program(): Command {
  const root = new Command("fleet")
    .description("Fleet: put containers on a fleet of Linux devices and see how they are doing")
    .version(VERSION, "-V, --version")
    .addHelpText(
      "after",
      `
Quick start (no Kubernetes):
  fleet demo                 a whole local fleet: NATS, operator, three agents
  fleet operator run         the control plane, on NATS
  fleet agent run -c FILE    the agent, on each device
  fleet apply deployment --name web --image localhost/web:1 --selector site=lab
  fleet get deployments`,
    );
  for (
    const command of [
      operatorCommand(VERSION),
      agentCommand(VERSION),
      applyCommand(),
      deleteCommand(),
      getCommand(),
      demoCommand(VERSION),
      calloutCommand(),
      deviceCommand(),
      benchCommand(),
      vmCommand(),
    ]
  ) root.addCommand(command);
  // Every subcommand exits through the catch below, with our exit codes, and reports a
  // usage mistake on one line: commander puts hints such as "(Did you mean --name?)" on
  // a line of their own, and settings are not inherited through addCommand().
  const configure = (c: Command, path: string) => {
    c.exitOverride();
    c.configureOutput({
      outputError: (message, write) =>
        write(`${message.trim().replace(/\s*\n\s*/g, " ")} (see '${path} --help')\n`),
    });
    c.commands.forEach((sub) => configure(sub as Command, `${path} ${sub.name()}`));
  };
  configure(root, "fleet");
  return root;
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    await program().parseAsync(args, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message or the help.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    // One readable line for people: no timestamp, journald or a terminal adds context.
    const log = createLogger({ timestamps: false });
    if (isUsageError(error)) {
      log.error((error as Error).message);
      return ExitCode.usage;
    }
    log.error(error instanceof Error ? error.message : String(error));
    if (error instanceof Error && Deno.env.get("FLEET_LOG_LEVEL") === "debug") {
      log.debug(error.stack ?? "");
    }
    return ExitCode.failure;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
