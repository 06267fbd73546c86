import { Command } from "@commander-js/extra-typings";
import { DEFAULT_NAMESPACE, validateIdentifier } from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import { ExitCode, ignoreNotFoundOption, loggerFrom, namespaceOption } from "./_cli.ts";
import { openStore, withTarget } from "./_kube.ts";

export function deleteCommand(): Command {
  const del = new Command("delete").description("Delete fleet objects");
  withTarget(
    del.command("deployment")
      .description(
        "Delete a Deployment; the operator then removes its containers from every device",
      )
      .argument("<name>", "deployment name")
      .addOption(namespaceOption("namespace").default(DEFAULT_NAMESPACE))
      .addOption(ignoreNotFoundOption("succeed when the deployment does not exist")),
  )
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
      await using target = await openStore(flags, log);
      const deleted = await target.store.delete(ref);
      if (deleted) printLine(`deployment ${ref.namespace}/${ref.name} deleted`);
      else if (flags.ignoreNotFound) {
        printLine(`deployment ${ref.namespace}/${ref.name} not found`);
      } else {
        log.error(`Deployment ${ref.namespace}/${ref.name} not found`);
        Deno.exitCode = ExitCode.failure;
      }
    });
  return del;
}
