/**
 * The kube deployment source: Deployment custom resources, a finalizer so desired state is
 * removed before a CR goes, and status through the status subresource by server-side apply
 * (only our fields; other writers' fields are left alone). A CR whose spec core refuses (the
 * CRD schema cannot express every rule) is told so on its status, condition Accepted=False,
 * and the operator keeps what it had for it.
 */
import {
  API_VERSION,
  type BackoffPolicy,
  type Clock,
  type DeploymentRef,
  type DeploymentSpec,
  type DeploymentStatus,
  describeIssues,
  type StoredDeployment,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { untilAborted } from "../adapters/timers.ts";
import { informer, KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import type { Condition } from "../crd/device_resource.ts";
import { acceptedCondition, acceptedOf } from "../crd/deployment_resource.ts";
import type { DeploymentSource, SourceEvent } from "./deployment_source.ts";
import { DeploymentMap } from "./deployment_map.ts";
import {
  DeploymentObject,
  DeploymentType,
  FINALIZER,
  readSpec,
  statusOf,
} from "./kube_resources.ts";
import { RetryQueue } from "./retry_queue.ts";

export const OPERATOR_FIELD_MANAGER = "fleet-operator";
/**
 * Owner of the Accepted condition. Not OPERATOR_FIELD_MANAGER: server-side apply removes what
 * a manager applied before and leaves out now, so the aggregate's writes, which do not carry
 * the condition, would remove it.
 */
export const ACCEPTANCE_FIELD_MANAGER = "fleet-operator-acceptance";

function refOf(object: DeploymentObject): DeploymentRef {
  return { namespace: object.metadata.namespace ?? "default", name: object.metadata.name };
}

function named(ref: DeploymentRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Options of {@link KubeDeploymentSource}. */
export interface KubeDeploymentSourceOptions {
  /** Dates the Accepted condition's transitions and times its retries. @default systemClock */
  clock?: Clock;
  /** Spacing of the Accepted condition's retries. @default DEFAULT_BACKOFF */
  retry?: BackoffPolicy;
}

export class KubeDeploymentSource implements DeploymentSource {
  readonly kind = "kube";
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** Each CR's generation last delivered as an upsert: devices keep it while a later is refused. */
  readonly #accepted = new DeploymentMap<number>();
  /** Accepted conditions to write (or being written); the latest per CR wins. */
  readonly #wanted = new DeploymentMap<Condition>();
  /** The condition writes of each CR, one after the other, so an older one never lands last. */
  readonly #writing = new DeploymentMap<Promise<void>>();
  readonly #retries: RetryQueue;

  constructor(client: KubeClient, log: Logger, options: KubeDeploymentSourceOptions = {}) {
    this.#client = client;
    this.#log = log;
    this.#clock = options.clock ?? systemClock;
    this.#retries = new RetryQueue({
      clock: this.#clock,
      onDue: (ref) => this.#writeAccepted(ref),
      ...(options.retry ? { policy: options.retry } : {}),
    });
  }

  async *events(signal: AbortSignal): AsyncIterable<SourceEvent> {
    try {
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
        // A refused spec does not stop a deletion: the finalizer must still go.
        if (event.type === "delete" || object.metadata.deletionTimestamp !== undefined) {
          this.#accepted.delete(ref);
          this.#wanted.delete(ref);
          this.#retries.forget(ref);
          yield { type: "delete", ref };
          continue;
        }
        if (!(object.metadata.finalizers ?? []).includes(FINALIZER)) {
          // Without it the CR could vanish before its desired state is removed from devices
          // (a refused CR too: an earlier generation may be on them).
          if (
            !await this.#setFinalizers(object, [...(object.metadata.finalizers ?? []), FINALIZER])
          ) continue;
        }
        const generation = object.metadata.generation ?? 1;
        const { spec, problems } = readSpec(object);
        this.#judge(ref, object, generation, problems);
        if (spec === undefined) {
          yield { type: "refused", ref, generation };
          continue;
        }
        this.#accepted.set(ref, generation);
        yield { type: "upsert", deployment: this.#stored(object, spec) };
      }
    } finally {
      this.#retries.clear();
      await Promise.all(this.#writing.values());
    }
  }

  /**
   * Puts the Accepted condition of `generation` on the CR's status when it differs from what the
   * status says (a CR never refused gets none). The write goes on in the background, retried
   * with backoff: the CR's events keep flowing meanwhile.
   */
  #judge(
    ref: DeploymentRef,
    object: DeploymentObject,
    generation: number,
    problems: string | undefined,
  ): void {
    const status = statusOf(object);
    const previous = this.#wanted.get(ref) ?? acceptedOf(status?.conditions);
    const kept = this.#accepted.get(ref) ?? status?.observedGeneration;
    const condition = acceptedCondition(generation, problems, kept, this.#clock.now(), previous);
    if (condition === undefined) return;
    if (problems !== undefined) this.#log.warn(`Deployment ${named(ref)} ${condition.message}`);
    else if (previous?.status !== condition.status) {
      this.#log.info(`Deployment ${named(ref)} ${condition.message}`);
    }
    this.#wanted.set(ref, condition);
    this.#writeAccepted(ref);
  }

  /** Queues a write of the CR's wanted condition behind the writes already queued for it. */
  #writeAccepted(ref: DeploymentRef): void {
    const write = (this.#writing.get(ref) ?? Promise.resolve()).then(() =>
      this.#applyAccepted(ref)
    );
    this.#writing.set(ref, write);
    write.finally(() => {
      if (this.#writing.get(ref) === write) this.#writing.delete(ref);
    });
  }

  /** Writes the CR's wanted condition, if any; a failure is retried, never thrown. */
  async #applyAccepted(ref: DeploymentRef): Promise<void> {
    const condition = this.#wanted.get(ref);
    // A retry that waits writes the latest condition when it is due.
    if (condition === undefined || this.#retries.waiting(ref)) return;
    try {
      await this.#client.applyStatus(DeploymentType, {
        apiVersion: API_VERSION,
        kind: "Deployment",
        metadata: { name: ref.name, namespace: ref.namespace },
        status: { conditions: [condition] },
      }, { fieldManager: ACCEPTANCE_FIELD_MANAGER, force: true });
      if (this.#wanted.get(ref) === condition) this.#wanted.delete(ref);
      this.#retries.forget(ref);
    } catch (error) {
      // Deleted meanwhile: nothing to tell.
      if (isNotFound(error)) {
        if (this.#wanted.get(ref) === condition) this.#wanted.delete(ref);
        this.#retries.forget(ref);
        return;
      }
      const { delayMs } = this.#retries.failed(ref);
      this.#log.warn(
        `Could not write condition ${condition.type}=${condition.status} on Deployment ` +
          `${named(ref)}: ${(error as Error).message}; retrying in ${delayMs} ms`,
      );
    }
  }

  async loadStatuses(_signal: AbortSignal): Promise<DeploymentMap<DeploymentStatus>> {
    const { items } = await this.#client.list(DeploymentType);
    const statuses = new DeploymentMap<DeploymentStatus>();
    for (const item of items) {
      const parsed = DeploymentObject.safeParse(item);
      const status = parsed.success ? statusOf(parsed.data) : undefined;
      if (
        !parsed.success || status?.aggregate === undefined ||
        status.observedGeneration === undefined
      ) continue;
      const ref = refOf(parsed.data);
      statuses.set(ref, {
        ...ref,
        observedGeneration: status.observedGeneration,
        aggregate: status.aggregate,
        ...(status.rollout === undefined ? {} : { rollout: status.rollout }),
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
        status: {
          observedGeneration: status.observedGeneration,
          aggregate: status.aggregate,
          // Progressing, Paused, Degraded, Complete beside Accepted (a list-map by type); a
          // deployment that is Immediate again loses them, as this manager no longer sets them.
          ...(status.rollout === undefined
            ? {}
            : { rollout: status.rollout, conditions: status.rollout.conditions }),
        },
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

  #stored(object: DeploymentObject, spec: DeploymentSpec): StoredDeployment {
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
      spec,
    };
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.isNotFound();
}

function isConflict(error: unknown): boolean {
  return error instanceof KubeApiError && error.isConflict();
}
