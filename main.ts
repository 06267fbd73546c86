/**
 * `fleet`: one program for the control plane, the device agent and the CLI.
 * @module
 */
import { Command, CommanderError, type CommandUnknownOpts } from "@commander-js/extra-typings";
import denoJson from "./deno.json" with { type: "json" };
import { ExitCode, reportError } from "./commands/_report.ts";
import { secretsOnCommandLine } from "./commands/_secret.ts";
import { createLogger } from "./adapters/logger.ts";

export const VERSION: string = denoJson.version;

/**
 * Each command's module, loaded only when that command runs: `fleet agent run` must not pay
 * (in start-up time and resident memory) for Kubernetes, OIDC-provider, VM or demo code.
 */
const COMMANDS: Record<string, () => Promise<CommandUnknownOpts>> = {
  operator: async () => (await import("./commands/operator.ts")).operatorCommand(VERSION),
  agent: async () => (await import("./commands/agent.ts")).agentCommand(VERSION),
  apply: async () => (await import("./commands/apply.ts")).applyCommand(),
  audit: async () => (await import("./commands/audit.ts")).auditCommand(),
  delete: async () => (await import("./commands/delete.ts")).deleteCommand(),
  get: async () => (await import("./commands/get.ts")).getCommand(),
  logs: async () => (await import("./commands/logs.ts")).logsCommand(),
  exec: async () => (await import("./commands/exec.ts")).execCommand(),
  rollout: async () => (await import("./commands/rollout.ts")).rolloutCommand(),
  demo: async () => (await import("./commands/demo.ts")).demoCommand(VERSION),
  callout: async () => (await import("./commands/callout.ts")).calloutCommand(),
  device: async () => (await import("./commands/device.ts")).deviceCommand(),
  namespace: async () => (await import("./commands/namespace.ts")).namespaceCommand(),
  vm: async () => (await import("./commands/vm.ts")).vmCommand(),
  zitadel: async () => (await import("./commands/zitadel.ts")).zitadelCommand(),
};

/**
 * The commands `args` needs: the one it names, none for `--version`, and all of them
 * otherwise (help, or a mistyped command that commander then reports with suggestions).
 */
function commandsFor(args: string[]): string[] {
  const first = args[0];
  if (first !== undefined && Object.hasOwn(COMMANDS, first)) return [first];
  if (args.length === 1 && (first === "-V" || first === "--version")) return [];
  return Object.keys(COMMANDS);
}

async function program(args: string[]): Promise<Command> {
  const root = new Command("fleet")
    .description("Fleet: put containers on a fleet of Linux devices and see how they are doing")
    .version(VERSION, "-V, --version")
    // Each command's options come before its subcommand, so `apply -f` and `apply deployment -f`
    // are each their own command's -f (apply enables the same).
    .enablePositionalOptions()
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
  for (const name of commandsFor(args)) root.addCommand(await COMMANDS[name]!());
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
  // Said before the command runs, which may run for days (an operator, an agent).
  root.hook("preAction", (_root, action) => {
    const log = createLogger({ level: "warn" });
    for (const warning of secretsOnCommandLine(action)) log.warn(warning);
  });
  return root;
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    await (await program(args)).parseAsync(args, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message or the help.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    // One line, the detail at the command's --log-level debug; the error's kind decides the code.
    return reportError(error);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
