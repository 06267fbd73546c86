import { Command, Option } from "@commander-js/extra-typings";
import { ALL_DEVICES, validateIdentifier } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { type BindingStore, KubeBindingStore, NatsBindingStore } from "../cli/namespaces.ts";
import { connectFromFlags, ExitCode, loggerFrom, type NatsConnectionFlags } from "./_cli.ts";
import { kubeClientFrom, withTarget } from "./_kube.ts";

/** The binding store `--target` names (nats: the fleet-namespaces bucket; kube: Namespaces). */
export async function openBindings(
  flags: NatsConnectionFlags & { target: "nats" | "kube"; kubeconfig?: string | undefined },
  log: Logger,
): Promise<{ bindings: BindingStore } & AsyncDisposable> {
  if (flags.target === "kube") {
    const kube = await kubeClientFrom(flags);
    return {
      bindings: new KubeBindingStore(kube),
      [Symbol.asyncDispose]: () => Promise.resolve(kube.close()),
    };
  }
  const nc = await connectFromFlags(flags, log);
  return { bindings: new NatsBindingStore(nc, log), [Symbol.asyncDispose]: () => nc.close() };
}

function addBind(parent: Command): void {
  withTarget(
    parent.command("bind")
      .description(
        "Bind a namespace to the devices its deployments may target (admins only); a " +
          "namespace bound to none targets no device",
      )
      .argument("<namespace>", "namespace")
      .addOption(
        new Option(
          "--devices <selector>",
          `the devices: key=value, 'key in (a,b)', ... as in --selector, or '${ALL_DEVICES}' for every device`,
        ).makeOptionMandatory().env("FLEET_NAMESPACE_DEVICES"),
      ),
  )
    .addHelpText(
      "after",
      `
No selector a deployment in the namespace writes reaches past its binding. On --target kube
the binding is the Namespace's annotation fleet.nationtech.io/device-selector; on nats, the key
<namespace> of the bucket fleet-namespaces. Changing it retargets the namespace's deployments.

Examples:
  fleet namespace bind team-a --devices 'site=a'
  fleet namespace bind lab --devices 'site in (lab,bench),!retired' --target kube
  fleet namespace bind default --devices '${ALL_DEVICES}'`,
    )
    .action(async (namespace, flags) => {
      const log = loggerFrom(flags);
      await using target = await openBindings(flags, log);
      await target.bindings.bind(namespace, flags.devices);
      printLine(`namespace ${namespace} bound to devices ${flags.devices.trim()}`);
    });
}

function addUnbind(parent: Command): void {
  withTarget(
    parent.command("unbind")
      .description("Remove a namespace's binding: its deployments then target no device")
      .argument("<namespace>", "namespace"),
  )
    .addHelpText(
      "after",
      `
Example:
  fleet namespace unbind team-a`,
    )
    .action(async (namespace, flags) => {
      validateIdentifier("namespace", namespace);
      const log = loggerFrom(flags);
      await using target = await openBindings(flags, log);
      if (await target.bindings.unbind(namespace)) {
        printLine(`namespace ${namespace} unbound: it targets no device`);
      } else {
        log.error(`Namespace ${namespace} has no binding`);
        Deno.exitCode = ExitCode.failure;
      }
    });
}

export function namespaceCommand(): Command {
  const namespace = new Command("namespace").description(
    "Which devices each namespace may target (tenancy)",
  );
  addBind(namespace);
  addUnbind(namespace);
  return namespace;
}
