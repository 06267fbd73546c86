/**
 * The kube source as the CLI sees it: apply (server-side, with the CLI's own field manager)
 * and delete Deployment objects, and read them and the Device objects back.
 */
import * as z from "zod";
import { DeviceSpec, DeviceStatus } from "../crd/device_resource.ts";
import {
  API_VERSION,
  type Deployment,
  type DeploymentRef,
  describeIssues,
  deviceLabels,
  targetingLabels,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import { FleetError } from "../core/errors.ts";
import {
  DeploymentObject,
  DeploymentType,
  DeviceType,
  ObjectMeta,
  readSpec,
  statusOf,
} from "../operator/kube_resources.ts";
import { refusalMessage, refusalOf } from "../crd/deployment_resource.ts";
import type { ApplyOutcome, DeploymentRow, DeviceRow, FleetStore } from "./nats_store.ts";

export const CLI_FIELD_MANAGER = "fleet-cli";

/** The API server found the Deployment invalid (a CEL rule, an unknown field): the user's to fix. */
export class DeploymentRefusedError extends FleetError {
  override name = "DeploymentRefusedError";
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

const DeviceObject = z.object({
  metadata: ObjectMeta,
  spec: DeviceSpec,
  status: z.object({
    lastSeen: z.string().optional(),
    agentConflict: DeviceStatus.shape.agentConflict,
  }).optional(),
});

/**
 * Whether the API server refused the object itself: invalid (422: a CEL rule, a bad value), or
 * a field its schema does not declare, which server-side apply reports as a 500 "failed to
 * create typed patch object (...): .spec.x: field not declared in schema" (kube-apiserver 1.34).
 */
function isRefusal(error: KubeApiError): boolean {
  return error.status === 422 ||
    (error.status === 500 && error.serverMessage.includes("field not declared in schema"));
}

export class KubeDeploymentStore implements FleetStore {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #forceConflicts: boolean;

  constructor(client: KubeClient, log: Logger, options: { forceConflicts?: boolean } = {}) {
    this.#client = client;
    this.#log = log;
    this.#forceConflicts = options.forceConflicts ?? false;
  }

  /**
   * Server-side apply, with strict field validation as kubectl asks for it: a field the
   * installed CRD does not know (a CRD older than this CLI) is refused by name, not dropped.
   * The API server bumps the generation only when the spec changed.
   * @throws DeploymentRefusedError when the API server refuses the object
   */
  async apply(deployment: Deployment): Promise<{ outcome: ApplyOutcome; generation: number }> {
    const { name, namespace, labels } = deployment.metadata;
    const before = await this.#client.get(DeploymentType, name, namespace);
    const previous = before === undefined ? undefined : DeploymentObject.safeParse(before).data;
    // Only what a person sets: generation and creationTimestamp are the API server's.
    const object = {
      apiVersion: API_VERSION,
      kind: deployment.kind,
      metadata: { name, namespace, ...(labels ? { labels } : {}) },
      spec: deployment.spec,
    };
    let applied: unknown;
    try {
      applied = await this.#client.apply(DeploymentType, object, {
        fieldManager: CLI_FIELD_MANAGER,
        force: this.#forceConflicts,
        strictFields: true,
      });
    } catch (error) {
      if (error instanceof KubeApiError && isRefusal(error)) {
        throw new DeploymentRefusedError(error.message, { cause: error });
      }
      throw error;
    }
    const after = DeploymentObject.parse(applied);
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

  /**
   * Every Deployment CR whose name is readable. One whose current generation the operator
   * refuses is listed with why (its Accepted condition; or, before the operator has said so,
   * core's own reasons) and, when core cannot read it, without its spec.
   */
  async deployments(): Promise<DeploymentRow[]> {
    const { items } = await this.#client.list(DeploymentType);
    const rows: DeploymentRow[] = [];
    for (const item of items) {
      const parsed = DeploymentObject.safeParse(item);
      if (!parsed.success) {
        this.#log.warn(`Skipping an unreadable Deployment: ${describeIssues(parsed.error)}`);
        continue;
      }
      const { metadata } = parsed.data;
      const namespace = metadata.namespace ?? "default";
      const generation = metadata.generation ?? 1;
      const { spec, problems } = readSpec(parsed.data);
      const status = statusOf(parsed.data);
      const refused = refusalOf(status?.conditions, generation) ??
        (problems === undefined
          ? undefined
          : refusalMessage(generation, problems, status?.observedGeneration));
      rows.push({
        deployment: {
          apiVersion: API_VERSION,
          kind: "Deployment",
          metadata: {
            name: metadata.name,
            namespace,
            generation,
            ...(metadata.creationTimestamp
              ? { creationTimestamp: metadata.creationTimestamp }
              : {}),
          },
          ...(spec === undefined ? {} : { spec }),
        },
        status: status?.aggregate && status.observedGeneration !== undefined
          ? {
            namespace,
            name: metadata.name,
            observedGeneration: status.observedGeneration,
            aggregate: status.aggregate,
            ...(status.rollout === undefined ? {} : { rollout: status.rollout }),
            updatedAt: "",
          }
          : undefined,
        ...(refused === undefined ? {} : { refused }),
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
      const { reportedLabels, ...reported } = spec;
      rows.push({
        info: {
          ...reported,
          deviceId: metadata.name,
          labels: deviceLabels(metadata.name, reportedLabels ?? {}),
          updatedAt: "",
        },
        labels: targetingLabels(metadata.name, metadata.labels),
        lastSeen: lastSeen === undefined || Number.isNaN(lastSeen) ? undefined : lastSeen,
        ...(status?.agentConflict
          ? { agentConflict: { deviceId: metadata.name, ...status.agentConflict } }
          : {}),
      });
    }
    return rows.sort((a, b) => a.info.deviceId.localeCompare(b.info.deviceId));
  }
}
