import { Command, Option } from "@commander-js/extra-typings";
import { validateIdentifier } from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import { sleep } from "../adapters/timers.ts";
import { loggerFrom, namespaceOption, shutdownSignal } from "./_cli.ts";
import { openStore, withTarget } from "./_kube.ts";
import { OutputFormats, renderDeployments, renderDevices } from "../cli/render.ts";
import { renderNamespaces } from "../cli/namespaces.ts";
import { openBindings } from "./namespace.ts";

// Factories, not shared instances: two subcommands must not share one mutable Option.
const outputOption = () =>
  new Option("-o, --output <format>", "table, wide, json or yaml")
    .choices(OutputFormats).default("table" as const).env("FLEET_OUTPUT");
const watchOption = () =>
  new Option("-w, --watch", "keep showing the list as it changes (Ctrl-C to stop)")
    .env("FLEET_WATCH");

/** Prints `render()` once, or on every change until Ctrl-C with --watch. */
async function show(
  render: () => Promise<string>,
  watch: boolean | undefined,
  log: ReturnType<typeof loggerFrom>,
) {
  if (!watch) {
    printLine(await render());
    return;
  }
  const signal = shutdownSignal(log);
  let last = "";
  while (!signal.aborted) {
    const text = await render();
    if (text !== last) {
      printLine(`--- ${new Date().toISOString()}\n${text}`);
      last = text;
    }
    await sleep(1000, signal);
  }
}

export function getCommand(): Command {
  const get = new Command("get").description("Show fleet objects");
  withTarget(
    get.command("deployments")
      .alias("deployment")
      .description("List Deployments with how the fleet is doing with each")
      .addOption(namespaceOption("only this namespace"))
      .addOption(outputOption())
      .addOption(watchOption()),
  )
    .addHelpText(
      "after",
      `
Columns: MATCHED devices the selector picks; SUCCEEDED running the current generation;
FAILED reporting an error; PENDING neither yet (including devices that never reported);
UNREACHABLE matched devices without a recent heartbeat. GEN ends with * while the operator
has not yet processed the latest generation, and with ! when it refused it (a Deployment
applied with kubectl that breaks a rule the CRD cannot check): a note under the table says
why, and its devices keep the earlier generation.

Examples:
  fleet get deployments
  fleet get deployments -n default -o yaml
  fleet get deployments --watch`,
    )
    .action(async (flags) => {
      if (flags.namespace !== undefined) validateIdentifier("namespace", flags.namespace);
      const log = loggerFrom(flags);
      await using target = await openStore(flags, log);
      const store = target.store;
      await show(
        async () => {
          const rows = (await store.deployments()).filter((r) =>
            flags.namespace === undefined || r.deployment.metadata.namespace === flags.namespace
          );
          return renderDeployments(rows, flags.output, Date.now());
        },
        flags.watch,
        log,
      );
    });
  withTarget(
    get.command("devices")
      .alias("device")
      .description("List the devices that reported to the fleet")
      .addOption(outputOption())
      .addOption(watchOption()),
  )
    .addHelpText(
      "after",
      `
Columns: LABELS are what deployments select the device by, kept by the control plane (set
with fleet device label); REPORTED, shown only where it differs, is what the device's own
config says about it.

Examples:
  fleet get devices
  fleet get devices -o wide`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      await using target = await openStore(flags, log);
      const store = target.store;
      await show(
        async () => renderDevices(await store.devices(), flags.output, Date.now()),
        flags.watch,
        log,
      );
    });
  withTarget(
    get.command("namespaces")
      .alias("namespace")
      .description("List namespaces and the devices each may target (its binding)")
      .addOption(outputOption()),
  )
    .addHelpText(
      "after",
      `
DEVICES is the namespace's binding; <none> means its deployments target no device until an
admin binds it (fleet namespace bind). On nats only bound namespaces are listed.

Examples:
  fleet get namespaces
  fleet get namespaces --target kube -o yaml`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      await using target = await openBindings(flags, log);
      printLine(renderNamespaces(await target.bindings.list(), flags.output));
    });
  return get;
}
