/**
 * A deployment's spec and rollout status as `fleet rollout` reads them, wherever Deployments
 * live: the `fleet-deployments` and `fleet-deployment-status` buckets (nats), or the Deployment
 * object and its `status.rollout` (kube). Watched to follow a rollout and to see an action
 * taken.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Clock } from "../core/clock.ts";
import {
  API_VERSION,
  Buckets,
  type Deployment,
  type DeploymentRef,
  type DeploymentSpec,
  DeploymentStatus,
  keys,
  parseJsonWith,
} from "../core/mod.ts";
import { RolloutStatus } from "../core/rollout_status.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { openBucket } from "../adapters/nats/mod.ts";
import { sleep, untilAborted } from "../adapters/timers.ts";
import { parseStoredDeployment } from "../operator/nats_source.ts";
import { DeploymentObject, DeploymentType, readSpec } from "../operator/kube_resources.ts";

/** One deployment as the rollout commands see it. */
export interface RolloutSnapshot {
  metadata: Deployment["metadata"];
  /** Undefined when the operator refuses the stored spec (kube: a CR past the CRD schema). */
  spec: DeploymentSpec | undefined;
  /** Undefined for a deployment that rolls out Immediately, or before the operator wrote it. */
  rollout: RolloutStatus | undefined;
}

/** Where `fleet rollout` reads a deployment. */
export interface RolloutTarget {
  /** The deployment now; undefined when there is none of that name. */
  read(ref: DeploymentRef): Promise<RolloutSnapshot | undefined>;
  /** The deployment now, then each time it changes, until `signal` aborts. */
  watch(ref: DeploymentRef, signal: AbortSignal): AsyncIterable<RolloutSnapshot | undefined>;
}

/** The snapshots of `read` after each wake of `changes`, each one only when it differs. */
async function* distinct(
  read: () => Promise<RolloutSnapshot | undefined>,
  changes: AsyncIterable<unknown>,
): AsyncIterable<RolloutSnapshot | undefined> {
  let last: string | undefined;
  for await (const _ of changes) {
    const snapshot = await read();
    const shown = JSON.stringify(snapshot ?? null);
    if (shown === last) continue;
    last = shown;
    yield snapshot;
  }
}

/** The nats source: the deployment's key in its two buckets; the status is watched. */
export class NatsRolloutTarget implements RolloutTarget {
  readonly #nc: NatsConnection;
  readonly #log: Logger;

  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
  }

  async read(ref: DeploymentRef): Promise<RolloutSnapshot | undefined> {
    const key = keys.deployment(ref);
    const stored = await (await openBucket(this.#nc, Buckets.deployments)).get(key);
    if (stored === null || stored.operation !== "PUT") return undefined;
    const deployment = parseStoredDeployment(stored.value, key);
    const status = await (await openBucket(this.#nc, Buckets.deploymentStatus)).get(key);
    let rollout: RolloutStatus | undefined;
    if (status !== null && status.operation === "PUT") {
      try {
        rollout = parseJsonWith(DeploymentStatus, status.value, `status of ${key}`).rollout;
      } catch (error) {
        // The operator rewrites it; meanwhile the rollout is shown as unknown, not as a failure.
        this.#log.warn((error as Error).message);
      }
    }
    return { metadata: deployment.metadata, spec: deployment.spec, rollout };
  }

  async *watch(
    ref: DeploymentRef,
    signal: AbortSignal,
  ): AsyncIterable<RolloutSnapshot | undefined> {
    const kv = await openBucket(this.#nc, Buckets.deploymentStatus);
    // The watch gives the current value (if any) first; a read follows each.
    const updates = await kv.watch({ key: keys.deployment(ref) });
    try {
      yield* distinct(
        () => this.read(ref),
        untilAborted(
          (async function* () {
            yield "now";
            yield* updates;
          })(),
          signal,
        ),
      );
    } finally {
      updates.stop();
    }
  }
}

/** The kube source: the Deployment object, read again every second while watched. */
export class KubeRolloutTarget implements RolloutTarget {
  readonly #client: KubeClient;
  readonly #clock: Clock;
  readonly #log: Logger;

  constructor(client: KubeClient, log: Logger, clock: Clock) {
    this.#client = client;
    this.#log = log;
    this.#clock = clock;
  }

  async read(ref: DeploymentRef): Promise<RolloutSnapshot | undefined> {
    const object = await this.#client.get(DeploymentType, ref.name, ref.namespace);
    if (object === undefined) return undefined;
    const parsed = DeploymentObject.parse(object);
    const { labels } = parsed.metadata;
    const raw = (parsed.status as { rollout?: unknown } | undefined)?.rollout;
    const rollout = raw === undefined ? undefined : RolloutStatus.safeParse(raw);
    if (rollout?.success === false) {
      this.#log.warn(`Ignoring the unreadable status.rollout of ${ref.namespace}/${ref.name}`);
    }
    return {
      metadata: { name: ref.name, namespace: ref.namespace, ...(labels ? { labels } : {}) },
      spec: readSpec(parsed).spec,
      rollout: rollout?.data,
    };
  }

  watch(ref: DeploymentRef, signal: AbortSignal): AsyncIterable<RolloutSnapshot | undefined> {
    const clock = this.#clock;
    return distinct(
      () => this.read(ref),
      (async function* () {
        while (!signal.aborted) {
          yield "now";
          await sleep(1_000, signal, clock);
        }
      })(),
    );
  }
}

/** A deployment's snapshot as a Deployment to apply again with `spec`. */
export function deploymentOf(snapshot: RolloutSnapshot, spec: DeploymentSpec): Deployment {
  return { apiVersion: API_VERSION, kind: "Deployment", metadata: snapshot.metadata, spec };
}
