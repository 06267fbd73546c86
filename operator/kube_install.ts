/** Installs the CRDs by server-side apply and waits until the API server serves them. */
import * as z from "zod";
import { deploymentCrd, deviceCrd } from "../crd/crds.ts";
import type { Logger } from "../adapters/logger.ts";
import { sleep } from "../adapters/timers.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";
import { CrdType } from "./kube_resources.ts";

export const INSTALLER_FIELD_MANAGER = "fleet-installer";

const CrdStatus = z.object({
  metadata: z.object({ name: z.string() }),
  status: z.object({
    conditions: z.array(
      z.object({ type: z.string(), status: z.string(), message: z.string().nullish() }),
    ).nullish(),
  }).nullish(),
});

/** The CRD could not be established in time; the message carries the API server's reason. */
export class CrdInstallError extends Error {
  override name = "CrdInstallError";
}

/**
 * Applies both CRDs and waits until each is Established.
 * @returns the CRD names, in order
 * @throws CrdInstallError when a CRD is not Established within `timeoutMs`
 */
export async function installCrds(
  client: KubeClient,
  log: Logger,
  timeoutMs = 60_000,
): Promise<string[]> {
  const crds = [deploymentCrd(), deviceCrd()];
  const names: string[] = [];
  for (const crd of crds) {
    const applied = CrdStatus.parse(
      await client.apply(CrdType, crd, { fieldManager: INSTALLER_FIELD_MANAGER, force: true }),
    );
    names.push(applied.metadata.name);
    log.info(`Applied CRD ${applied.metadata.name}`);
  }
  const deadline = Date.now() + timeoutMs;
  const never = new AbortController().signal;
  for (const name of names) {
    for (;;) {
      const crd = CrdStatus.parse(await client.get(CrdType, name));
      const conditions = crd.status?.conditions ?? [];
      if (conditions.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) {
        const why = conditions.map((c) =>
          `${c.type}=${c.status}${c.message ? ` (${c.message})` : ""}`
        ).join(", ");
        throw new CrdInstallError(
          `CRD ${name} is not Established after ${timeoutMs / 1000} s: ${why || "no conditions"}`,
        );
      }
      await sleep(200, never);
    }
  }
  return names;
}
