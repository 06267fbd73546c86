/**
 * The kube deployment source: Deployment custom resources, a finalizer so desired state is
 * removed before a CR goes, and status through the status subresource by server-side apply
 * (only our fields; other writers' fields are left alone).
 */
import {
  API_VERSION,
  type DeploymentRef,
  type DeploymentStatus,
  describeIssues,
  type StoredDeployment,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { untilAborted } from "../adapters/timers.ts";
import { informer, KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import type { DeploymentSource, SourceEvent } from "./deployment_source.ts";
import { DeploymentMap } from "./deployment_map.ts";
import { DeploymentObject, DeploymentType, FINALIZER } from "./kube_resources.ts";

export const OPERATOR_FIELD_MANAGER = "fleet-operator";

function refOf(object: DeploymentObject): DeploymentRef {
  return { namespace: object.metadata.namespace ?? "default", name: object.metadata.name };
}

export class KubeDeploymentSource implements DeploymentSource {
  readonly kind = "kube";
  readonly #client: KubeClient;
  readonly #log: Logger;

  constructor(client: KubeClient, log: Logger) {
    this.#client = client;
    this.#log = log;
  }

  async *events(signal: AbortSignal): AsyncIterable<SourceEvent> {
    for await (
      const event of untilAborted(
        informer(this.#client, DeploymentType, { signal, logger: this.#log }),
        signal,
      )
    ) {
      if (event.type === "ready") {
        yield { type: "ready" };
        continue;
      }
      const parsed = DeploymentObject.safeParse(event.object);
      if (!parsed.success) {
        this.#log.warn(`Ignoring an unreadable Deployment: ${describeIssues(parsed.error)}`);
        continue;
      }
      const object = parsed.data;
      const ref = refOf(object);
      if (event.type === "delete" || object.metadata.deletionTimestamp !== undefined) {
        yield { type: "delete", ref };
        continue;
      }
      if (!(object.metadata.finalizers ?? []).includes(FINALIZER)) {
        // Without it the CR could vanish before its desired state is removed from devices.
        if (
          !await this.#setFinalizers(object, [...(object.metadata.finalizers ?? []), FINALIZER])
        ) continue;
      }
      yield { type: "upsert", deployment: this.#stored(object) };
    }
  }

  async loadStatuses(_signal: AbortSignal): Promise<DeploymentMap<DeploymentStatus>> {
    const { items } = await this.#client.list(DeploymentType);
    const statuses = new DeploymentMap<DeploymentStatus>();
    for (const item of items) {
      const parsed = DeploymentObject.safeParse(item);
      const status = parsed.success ? parsed.data.status : undefined;
      if (
        !parsed.success || status?.aggregate === undefined ||
        status.observedGeneration === undefined
      ) continue;
      const ref = refOf(parsed.data);
      statuses.set(ref, {
        ...ref,
        observedGeneration: status.observedGeneration,
        aggregate: status.aggregate,
        updatedAt: "",
      });
    }
    return statuses;
  }

  async writeStatus(status: DeploymentStatus): Promise<void> {
    try {
      await this.#client.applyStatus(DeploymentType, {
        apiVersion: API_VERSION,
        kind: "Deployment",
        metadata: { name: status.name, namespace: status.namespace },
        status: { observedGeneration: status.observedGeneration, aggregate: status.aggregate },
      }, { fieldManager: OPERATOR_FIELD_MANAGER, force: true });
    } catch (error) {
      // Deleted meanwhile: nothing to report on.
      if (isNotFound(error)) return;
      throw error;
    }
  }

  async release(ref: DeploymentRef): Promise<void> {
    const current = await this.#client.get(DeploymentType, ref.name, ref.namespace);
    if (current === undefined) return;
    const parsed = DeploymentObject.safeParse(current);
    if (!parsed.success) return;
    const finalizers = parsed.data.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    await this.#patchFinalizers(parsed.data, finalizers.filter((f) => f !== FINALIZER));
    this.#log.info(
      `Deployment ${ref.namespace}/${ref.name} released: its desired state is gone from every device`,
    );
  }

  /** Adds our finalizer; false when the CR changed meanwhile (its next event retries). */
  async #setFinalizers(object: DeploymentObject, finalizers: string[]): Promise<boolean> {
    try {
      await this.#patchFinalizers(object, finalizers);
      return true;
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) return false;
      throw error;
    }
  }

  #patchFinalizers(object: DeploymentObject, finalizers: string[]): Promise<unknown> {
    // The resourceVersion makes it a compare-and-set: another writer's finalizer is never lost.
    return this.#client.mergePatch(DeploymentType, object.metadata.name, {
      metadata: { finalizers, resourceVersion: object.metadata.resourceVersion },
    }, { namespace: object.metadata.namespace ?? "default" });
  }

  #stored(object: DeploymentObject): StoredDeployment {
    return {
      apiVersion: API_VERSION,
      kind: "Deployment",
      metadata: {
        name: object.metadata.name,
        namespace: object.metadata.namespace ?? "default",
        generation: object.metadata.generation ?? 1,
        ...(object.metadata.creationTimestamp
          ? { creationTimestamp: object.metadata.creationTimestamp }
          : {}),
      },
      spec: object.spec,
    };
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.isNotFound();
}

function isConflict(error: unknown): boolean {
  return error instanceof KubeApiError && error.isConflict();
}
