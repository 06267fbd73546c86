/**
 * The kube source as the CLI sees it: apply (server-side, with the CLI's own field manager)
 * and delete Deployment objects, and read them and the Device objects back.
 */
import { z } from "zod";
import { DeviceSpec, DeviceStatus } from "../crd/device_resource.ts";
import { API_VERSION, type Deployment, type DeploymentRef, describeIssues } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";
import {
  DeploymentObject,
  DeploymentType,
  DeviceType,
  ObjectMeta,
} from "../operator/kube_resources.ts";
import type { ApplyOutcome, DeploymentRow, DeviceRow, FleetStore } from "./nats_store.ts";

export const CLI_FIELD_MANAGER = "fleet-cli";

const DeviceObject = z.object({
  metadata: ObjectMeta,
  spec: DeviceSpec,
  status: z.object({
    lastSeen: z.string().optional(),
    agentConflict: DeviceStatus.shape.agentConflict,
  }).optional(),
});

export class KubeDeploymentStore implements FleetStore {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #forceConflicts: boolean;

  constructor(client: KubeClient, log: Logger, options: { forceConflicts?: boolean } = {}) {
    this.#client = client;
    this.#log = log;
    this.#forceConflicts = options.forceConflicts ?? false;
  }

  /** Server-side apply; the API server bumps the generation only when the spec changed. */
  async apply(deployment: Deployment): Promise<{ outcome: ApplyOutcome; generation: number }> {
    const { name, namespace } = deployment.metadata;
    const before = await this.#client.get(DeploymentType, name, namespace);
    const previous = before === undefined ? undefined : DeploymentObject.safeParse(before).data;
    const after = DeploymentObject.parse(
      await this.#client.apply(DeploymentType, { ...deployment, apiVersion: API_VERSION }, {
        fieldManager: CLI_FIELD_MANAGER,
        force: this.#forceConflicts,
      }),
    );
    const generation = after.metadata.generation ?? 1;
    const outcome: ApplyOutcome = before === undefined
      ? "created"
      : previous?.metadata.generation === generation
      ? "unchanged"
      : "configured";
    return { outcome, generation };
  }

  async delete(ref: DeploymentRef): Promise<boolean> {
    return await this.#client.delete(DeploymentType, ref.name, { namespace: ref.namespace });
  }

  async deployments(): Promise<DeploymentRow[]> {
    const { items } = await this.#client.list(DeploymentType);
    const rows: DeploymentRow[] = [];
    for (const item of items) {
      const parsed = DeploymentObject.safeParse(item);
      if (!parsed.success) {
        this.#log.warn(`Skipping an unreadable Deployment: ${describeIssues(parsed.error)}`);
        continue;
      }
      const { metadata, spec, status } = parsed.data;
      const namespace = metadata.namespace ?? "default";
      rows.push({
        deployment: {
          apiVersion: API_VERSION,
          kind: "Deployment",
          metadata: {
            name: metadata.name,
            namespace,
            generation: metadata.generation ?? 1,
            ...(metadata.creationTimestamp
              ? { creationTimestamp: metadata.creationTimestamp }
              : {}),
          },
          spec,
        },
        status: status?.aggregate && status.observedGeneration !== undefined
          ? {
            namespace,
            name: metadata.name,
            observedGeneration: status.observedGeneration,
            aggregate: status.aggregate,
            updatedAt: "",
          }
          : undefined,
      });
    }
    return rows.sort((a, b) =>
      `${a.deployment.metadata.namespace}.${a.deployment.metadata.name}`.localeCompare(
        `${b.deployment.metadata.namespace}.${b.deployment.metadata.name}`,
      )
    );
  }

  async devices(): Promise<DeviceRow[]> {
    const { items } = await this.#client.list(DeviceType);
    const rows: DeviceRow[] = [];
    for (const item of items) {
      const parsed = DeviceObject.safeParse(item);
      if (!parsed.success) continue;
      const { metadata, spec, status } = parsed.data;
      const lastSeen = status?.lastSeen ? Date.parse(status.lastSeen) : undefined;
      rows.push({
        info: { ...spec, deviceId: metadata.name, labels: metadata.labels ?? {}, updatedAt: "" },
        lastSeen: lastSeen === undefined || Number.isNaN(lastSeen) ? undefined : lastSeen,
        ...(status?.agentConflict
          ? { agentConflict: { deviceId: metadata.name, ...status.agentConflict } }
          : {}),
      });
    }
    return rows.sort((a, b) => a.info.deviceId.localeCompare(b.info.deviceId));
  }
}
