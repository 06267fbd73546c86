/** Flags and wiring shared by the commands that talk to Kubernetes. */
import { Option } from "@commander-js/extra-typings";
import { KubeClient, loadKubeConfig } from "../adapters/kube/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { type FleetStore, NatsDeploymentStore } from "../cli/nats_store.ts";
import { connectFromFlags, type NatsConnectionFlags } from "./_cli.ts";

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

export async function kubeClientFrom(
  flags: { kubeconfig?: string | undefined },
): Promise<KubeClient> {
  return new KubeClient(await loadKubeConfig(flags.kubeconfig ? { path: flags.kubeconfig } : {}));
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
  if (flags.target === "kube") {
    const kube = await kubeClientFrom(flags);
    return {
      store: new KubeDeploymentStore(kube, log, { forceConflicts: flags.forceConflicts ?? false }),
      [Symbol.asyncDispose]: () => Promise.resolve(kube.close()),
    };
  }
  const nc = await connectFromFlags(flags, log);
  return { store: new NatsDeploymentStore(nc, log), [Symbol.asyncDispose]: () => nc.close() };
}
