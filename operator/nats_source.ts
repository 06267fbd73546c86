/** The embedded deployment source: Deployments and their status in NATS KV. */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  BUCKET_HISTORY,
  Buckets,
  type Clock,
  Deployment,
  type DeploymentRef,
  DeploymentStatus,
  keys,
  parseJsonWith,
  parseKey,
  refKey,
  type StoredDeployment,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { ensureBucket, watchBucket } from "../adapters/nats/mod.ts";
import type { DeploymentSource, SourceEvent } from "./deployment_source.ts";
import { DeploymentMap } from "./deployment_map.ts";

/** Parses a stored Deployment; generation defaults to 1 for objects written by hand. */
export function parseStoredDeployment(value: Uint8Array | string, key: string): StoredDeployment {
  const deployment = parseJsonWith(Deployment, value, `deployment at key "${key}"`);
  return {
    ...deployment,
    metadata: { ...deployment.metadata, generation: deployment.metadata.generation ?? 1 },
  };
}

export class NatsDeploymentSource implements DeploymentSource {
  readonly kind = "nats";
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #replicas: number;
  readonly #clock: Clock;
  #status: KV | undefined;

  /** @param clock times the watches' retries @default systemClock */
  constructor(nc: NatsConnection, log: Logger, replicas: number, clock: Clock = systemClock) {
    this.#nc = nc;
    this.#log = log;
    this.#replicas = replicas;
    this.#clock = clock;
  }

  async *events(signal: AbortSignal): AsyncIterable<SourceEvent> {
    await ensureBucket(this.#nc, Buckets.deployments, {
      replicas: this.#replicas,
      history: BUCKET_HISTORY[Buckets.deployments],
    });
    for await (
      const event of watchBucket({
        nc: this.#nc,
        bucket: Buckets.deployments,
        logger: this.#log,
        signal,
        clock: this.#clock,
      })
    ) {
      if (event.type === "ready") {
        yield { type: "ready" };
        continue;
      }
      const ref = parseKey.deployment(event.key);
      if (!ref) {
        this.#log.warn(
          `Ignoring key "${event.key}" in ${Buckets.deployments}: expected <namespace>.<name>`,
        );
        continue;
      }
      if (event.type === "delete") {
        yield { type: "delete", ref };
        continue;
      }
      try {
        const deployment = parseStoredDeployment(event.value, event.key);
        if (
          refKey({ namespace: deployment.metadata.namespace, name: deployment.metadata.name }) !==
            event.key
        ) {
          this.#log.warn(
            `Ignoring deployment at key "${event.key}": its metadata names another deployment`,
          );
          continue;
        }
        yield { type: "upsert", deployment };
      } catch (error) {
        this.#log.warn(`Ignoring an unreadable deployment: ${(error as Error).message}`);
      }
    }
  }

  async loadStatuses(signal: AbortSignal): Promise<DeploymentMap<DeploymentStatus>> {
    await this.#statusBucket();
    const statuses = new DeploymentMap<DeploymentStatus>();
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort);
    try {
      for await (
        const event of watchBucket({
          nc: this.#nc,
          bucket: Buckets.deploymentStatus,
          logger: this.#log,
          signal: stop.signal,
          clock: this.#clock,
        })
      ) {
        if (event.type === "ready") break;
        if (event.type !== "put") continue;
        const ref = parseKey.deployment(event.key);
        if (!ref) continue;
        try {
          statuses.set(ref, parseJsonWith(DeploymentStatus, event.value, "deployment status"));
        } catch (error) {
          // Rewritten like a changed one.
          this.#log.debug(`Unreadable status at "${event.key}"`, { error });
        }
      }
    } finally {
      stop.abort();
      signal.removeEventListener("abort", onAbort);
    }
    return statuses;
  }

  async writeStatus(status: DeploymentStatus): Promise<void> {
    const kv = await this.#statusBucket();
    await kv.put(keys.deploymentStatus(status), JSON.stringify(status));
  }

  async release(ref: DeploymentRef): Promise<void> {
    const kv = await this.#statusBucket();
    await kv.delete(keys.deploymentStatus(ref));
  }

  async #statusBucket(): Promise<KV> {
    const kv = this.#status ?? await ensureBucket(this.#nc, Buckets.deploymentStatus, {
      replicas: this.#replicas,
      history: BUCKET_HISTORY[Buckets.deploymentStatus],
    });
    this.#status = kv;
    return kv;
  }
}
