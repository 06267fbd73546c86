import { Command, Option } from "@commander-js/extra-typings";
import { DEFAULT_NAMESPACE, validateIdentifier } from "../core/mod.ts";
import { NatsDeploymentStore } from "../operator/mod.ts";
import { printLine } from "../adapters/output.ts";
import {
  connectCli,
  ExitCode,
  logFormatOption,
  loggerFrom,
  logLevelOption,
  natsPasswordOption,
  natsUrlOption,
  natsUserOption,
} from "./_cli.ts";

export function deleteCommand(): Command {
  const del = new Command("delete").description("Delete fleet objects");
  del.command("deployment")
    .description("Delete a Deployment; the operator then removes its containers from every device")
    .argument("<name>", "deployment name")
    .addOption(new Option("-n, --namespace <namespace>", "namespace").default(DEFAULT_NAMESPACE))
    .option("--ignore-not-found", "succeed when the deployment does not exist")
    .addOption(natsUrlOption())
    .addOption(natsUserOption())
    .addOption(natsPasswordOption())
    .addOption(logLevelOption().default("warn" as const)) // one-shot commands: quiet unless asked
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example:
  fleet delete deployment web -n default`,
    )
    .action(async (name, flags) => {
      const ref = {
        namespace: validateIdentifier("namespace", flags.namespace),
        name: validateIdentifier("deployment name", name),
      };
      const log = loggerFrom(flags);
      const nc = await connectCli(flags, log);
      try {
        const deleted = await new NatsDeploymentStore(nc, log).delete(ref);
        if (deleted) printLine(`deployment ${ref.namespace}/${ref.name} deleted`);
        else if (flags.ignoreNotFound) {
          printLine(`deployment ${ref.namespace}/${ref.name} not found`);
        } else {
          log.error(`Deployment ${ref.namespace}/${ref.name} not found`);
          Deno.exitCode = ExitCode.failure;
        }
      } finally {
        await nc.close();
      }
    });
  return del;
}
