/** Flags and wiring shared by the commands that talk to Kubernetes. */
import { type Command, Option, type OptionValues } from "@commander-js/extra-typings";
import { KubeClient, loadKubeConfig } from "../adapters/kube/mod.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "../adapters/logger.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { type FleetStore, NatsDeploymentStore } from "../cli/nats_store.ts";
import {
  connectFromFlags,
  type NatsClientFlags,
  type NatsConnectionFlags,
  withNatsClient,
} from "./_cli.ts";

export const kubeconfigOption = () =>
  new Option(
    "--kubeconfig <path>",
    "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
  )
    .env("FLEET_KUBECONFIG");

/**
 * Where Deployments live. FLEET_SOURCE, as `operator run --source`: the same choice, so one
 * variable points the operator and the CLI at the same place.
 */
export const targetOption = () =>
  new Option("--target <target>", "where Deployments live: nats (no Kubernetes) or kube (CRDs)")
    .choices(["nats", "kube"] as const).default("nats" as const).env("FLEET_SOURCE");

/** The flags {@link withTarget} adds. */
export type TargetFlags = NatsClientFlags & {
  target: "nats" | "kube";
  kubeconfig?: string | undefined;
};

/**
 * Adds what a one-shot command that reads or writes where Deployments live takes after its
 * own options: --target, --kubeconfig, the NATS connection, and logging (quiet unless asked).
 */
export function withTarget<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(command: Command<Args, Opts, GlobalOpts>): Command<Args, Opts & TargetFlags, GlobalOpts> {
  command.addOption(targetOption()).addOption(kubeconfigOption());
  withNatsClient(command);
  // Declared, not inferred through a dozen addOption() calls (see withNatsConnection).
  return command as Command<Args, Opts & TargetFlags, GlobalOpts>;
}

export async function kubeClientFrom(
  flags: { kubeconfig?: string | undefined },
): Promise<KubeClient> {
  return new KubeClient(await loadKubeConfig(flags.kubeconfig ? { path: flags.kubeconfig } : {}));
}

/** What `--target` names, made from its client, and how to let go of it. */
export async function openTarget<T>(
  flags: NatsConnectionFlags & { target: "nats" | "kube"; kubeconfig?: string | undefined },
  log: Logger,
  make: { kube: (client: KubeClient) => T; nats: (nc: NatsConnection) => T },
): Promise<{ value: T } & AsyncDisposable> {
  if (flags.target === "kube") {
    const kube = await kubeClientFrom(flags);
    return { value: make.kube(kube), [Symbol.asyncDispose]: () => Promise.resolve(kube.close()) };
  }
  const nc = await connectFromFlags(flags, log);
  return { value: make.nats(nc), [Symbol.asyncDispose]: () => nc.close() };
}

/** The store `--target` names, and how to let go of it. */
export async function openStore(
  flags: NatsConnectionFlags & {
    target: "nats" | "kube";
    kubeconfig?: string | undefined;
    forceConflicts?: boolean | undefined;
  },
  log: Logger,
): Promise<{ store: FleetStore } & AsyncDisposable> {
  const opened = await openTarget<FleetStore>(flags, log, {
    kube: (kube) =>
      new KubeDeploymentStore(kube, log, { forceConflicts: flags.forceConflicts ?? false }),
    nats: (nc) => new NatsDeploymentStore(nc, log),
  });
  return { store: opened.value, [Symbol.asyncDispose]: () => opened[Symbol.asyncDispose]() };
}
