/**
 * The nats source as the CLI sees it: apply and delete Deployments, and read deployments,
 * their status and the device registry, straight from the KV buckets.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  BUCKET_HISTORY,
  type BucketName,
  Buckets,
  type Deployment,
  type DeploymentRef,
  DeploymentStatus,
  DeviceInfo,
  Heartbeat,
  type InstanceConflict,
  keys,
  type Labels,
  nextGeneration,
  parseJsonWith,
  parseKey,
  RegisteredLabels,
  type StoredDeployment,
  targetingLabels,
} from "../core/mod.ts";
import { FleetError } from "../core/errors.ts";
import { bucketLimits } from "../core/limits.ts";
import type { Logger } from "../adapters/logger.ts";
import {
  type BucketEntry,
  ensureBucket,
  isMaxPayloadExceeded,
  isValueTooLarge,
  isWrongLastSequence,
  readBucketEntries,
} from "../adapters/nats/mod.ts";
import { parseStoredDeployment } from "../operator/nats_source.ts";
import { NatsAgentConflictStore } from "../operator/nats_agent_conflicts.ts";

/** How long a read of a bucket may take before the command gives up. */
const READ_TIMEOUT_MS = 30_000;

export type ApplyOutcome = "created" | "configured" | "unchanged";

/**
 * A deployment as a store lists it; without its spec when that is one core refuses (kube: a
 * CR applied with kubectl past what the CRD schema checks).
 */
export type ListedDeployment =
  | StoredDeployment
  | (Omit<StoredDeployment, "spec"> & { spec?: undefined });

export interface DeploymentRow {
  deployment: ListedDeployment;
  status: DeploymentStatus | undefined;
  /**
   * Why the operator refuses the current generation (kube only: `fleet apply` refuses it before
   * it is stored); devices keep the generation they had.
   */
  refused?: string;
}

export interface DeviceRow {
  /** What the device reports about itself: its `labels` are shown, never targeted. */
  info: DeviceInfo;
  /** The labels targeting matches: the label registry's, and the device-id label. */
  labels: Labels;
  /**
   * Epoch ms when the broker stored the last heartbeat, if any: the device's own clock may be
   * hours off (DESIGN.md §9 "Time"), so the time it wrote in the heartbeat is not used.
   */
  lastSeen: number | undefined;
  /** Set while two or more agents run with this device's id (the operator's decision). */
  agentConflict?: InstanceConflict;
}

/** What the CLI does with a deployment source, whichever it is. */
export interface FleetStore {
  apply(deployment: Deployment): Promise<{ outcome: ApplyOutcome; generation: number }>;
  /** False when it did not exist. */
  delete(ref: DeploymentRef): Promise<boolean>;
  deployments(): Promise<DeploymentRow[]>;
  devices(): Promise<DeviceRow[]>;
}

/** Someone else changed the deployment between each of our reads and our write. */
export class ConcurrentUpdateError extends FleetError {
  override name = "ConcurrentUpdateError";
  constructor(message: string, options?: ErrorOptions) {
    super("failure", message, options);
  }
}

/**
 * The deployment is larger than the NATS server takes in one message (its `max_payload`), or
 * than the deployments bucket keeps as one value (core/limits.ts).
 */
export class DeploymentTooLargeError extends FleetError {
  override name = "DeploymentTooLargeError";
  constructor(
    ref: DeploymentRef,
    readonly bytes: number,
    readonly limit: number,
    limitOf: "server" | "bucket",
    options?: ErrorOptions,
  ) {
    super(
      "usage",
      `Deployment ${ref.namespace}/${ref.name} is ${bytes} bytes as stored; ` +
        (limitOf === "server"
          ? `the NATS server takes messages of at most ${limit} bytes, headers included (its ` +
            `max_payload): make the workload smaller, or raise max_payload in the server's ` +
            `configuration`
          : `Fleet keeps deployments of at most ${limit} bytes, headers included: make the ` +
            `workload smaller`),
      options,
    );
  }
}

export class NatsDeploymentStore implements FleetStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #replicas: number;

  constructor(nc: NatsConnection, log: Logger, replicas = 1) {
    this.#nc = nc;
    this.#log = log;
    this.#replicas = replicas;
  }

  /** Stores the deployment, bumping the generation only when the spec changed. */
  async apply(deployment: Deployment): Promise<{ outcome: ApplyOutcome; generation: number }> {
    const kv = await this.#bucket(Buckets.deployments);
    const key = keys.deployment(deployment.metadata);
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await kv.get(key);
      const exists = entry !== null && entry.operation === "PUT";
      const stored = exists ? parseStoredDeployment(entry.value, key) : undefined;
      const generation = nextGeneration(stored, deployment);
      const value: StoredDeployment = {
        ...deployment,
        metadata: {
          ...deployment.metadata,
          generation,
          creationTimestamp: stored?.metadata.creationTimestamp ?? new Date().toISOString(),
        },
      };
      if (stored && stored.metadata.generation === generation) {
        return { outcome: "unchanged", generation };
      }
      const bytes = new TextEncoder().encode(JSON.stringify(value));
      // The limit the connected server announced; refused here with the sizes, not by the client.
      const limit = this.#nc.info?.max_payload;
      if (limit !== undefined && bytes.length > limit) {
        throw new DeploymentTooLargeError(deployment.metadata, bytes.length, limit, "server");
      }
      try {
        // Compare-and-set on the revision read above: concurrent applies cannot lose a generation.
        if (entry === null) await kv.create(key, bytes);
        else await kv.update(key, bytes, entry.revision);
        return { outcome: stored ? "configured" : "created", generation };
      } catch (error) {
        // Within the limit alone, but not with the KV headers: still too large, not a race.
        if (isMaxPayloadExceeded(error)) {
          throw new DeploymentTooLargeError(
            deployment.metadata,
            bytes.length,
            limit ?? 0,
            "server",
            {
              cause: error,
            },
          );
        }
        if (isValueTooLarge(error)) {
          const { maxValueSize } = bucketLimits(Buckets.deployments);
          throw new DeploymentTooLargeError(
            deployment.metadata,
            bytes.length,
            maxValueSize,
            "bucket",
            { cause: error },
          );
        }
        // Only a lost compare-and-set is a race worth another round; any other failure (no
        // permission, NATS gone) is the answer.
        if (!isWrongLastSequence(error)) throw error;
        this.#log.debug("Apply raced with another writer; retrying", { error });
      }
    }
    throw new ConcurrentUpdateError(
      `Deployment ${deployment.metadata.namespace}/${deployment.metadata.name} kept changing while it was applied; try again`,
    );
  }

  /** Deletes a deployment; false when it did not exist. */
  async delete(ref: DeploymentRef): Promise<boolean> {
    const kv = await this.#bucket(Buckets.deployments);
    const key = keys.deployment(ref);
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== "PUT") return false;
    await kv.delete(key);
    return true;
  }

  async deployments(): Promise<DeploymentRow[]> {
    await this.#bucket(Buckets.deployments);
    await this.#bucket(Buckets.deploymentStatus);
    const [raw, rawStatus] = await Promise.all([
      this.#read(Buckets.deployments),
      this.#read(Buckets.deploymentStatus),
    ]);
    const rows: DeploymentRow[] = [];
    for (const [key, value] of raw) {
      if (!parseKey.deployment(key)) continue;
      try {
        const deployment = parseStoredDeployment(value, key);
        const statusValue = rawStatus.get(key);
        const status = statusValue
          ? parseJsonWith(DeploymentStatus, statusValue, `status of ${key}`)
          : undefined;
        rows.push({ deployment, status });
      } catch (error) {
        this.#log.warn(`Skipping ${key}: ${(error as Error).message}`);
      }
    }
    return rows.sort((a, b) =>
      keys.deployment(a.deployment.metadata).localeCompare(keys.deployment(b.deployment.metadata))
    );
  }

  async devices(): Promise<DeviceRow[]> {
    await this.#bucket(Buckets.deviceInfo);
    await this.#bucket(Buckets.deviceHeartbeat);
    await this.#bucket(Buckets.desiredState);
    await this.#bucket(Buckets.deviceLabels);
    const [infos, beats, conflicts, registry] = await Promise.all([
      this.#read(Buckets.deviceInfo),
      this.#readEntries(Buckets.deviceHeartbeat),
      new NatsAgentConflictStore(this.#nc, this.#log).load(),
      this.#read(Buckets.deviceLabels),
    ]);
    const rows: DeviceRow[] = [];
    for (const [key, value] of infos) {
      const deviceId = parseKey.deviceInfo(key);
      if (!deviceId) continue;
      try {
        const info = parseJsonWith(DeviceInfo, value, `device info of ${deviceId}`);
        const beat = beats.get(keys.heartbeat(deviceId));
        // Parsed only to refuse an unreadable heartbeat, as the operator does.
        if (beat) parseJsonWith(Heartbeat, beat.value, "heartbeat");
        const lastSeen = beat?.created;
        const agentConflict = conflicts.get(deviceId);
        rows.push({
          info,
          labels: targetingLabels(deviceId, this.#registered(registry, deviceId)),
          lastSeen,
          ...(agentConflict ? { agentConflict } : {}),
        });
      } catch (error) {
        this.#log.warn(`Skipping ${key}: ${(error as Error).message}`);
      }
    }
    return rows.sort((a, b) => a.info.deviceId.localeCompare(b.info.deviceId));
  }

  /** A device's registry labels; an unreadable entry counts as none, as for the operator. */
  #registered(registry: Map<string, Uint8Array>, deviceId: string): Labels | undefined {
    const value = registry.get(keys.deviceLabels(deviceId));
    if (value === undefined) return undefined;
    try {
      return parseJsonWith(RegisteredLabels, value, `labels of ${deviceId}`).labels;
    } catch (error) {
      this.#log.warn(`Ignoring the registry labels of ${deviceId}: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** The values of {@link #readEntries}. */
  async #read(bucket: string): Promise<Map<string, Uint8Array>> {
    const entries = await this.#readEntries(bucket);
    return new Map([...entries].map(([key, entry]) => [key, entry.value]));
  }

  /** A read that NATS cannot serve (no JetStream quorum, say) fails instead of waiting forever. */
  #readEntries(bucket: string): Promise<Map<string, BucketEntry>> {
    return readBucketEntries(this.#nc, bucket, this.#log, {
      signal: AbortSignal.timeout(READ_TIMEOUT_MS),
    });
  }

  #bucket(name: BucketName): Promise<KV> {
    return ensureBucket(this.#nc, name, {
      replicas: this.#replicas,
      history: BUCKET_HISTORY[name],
    });
  }
}
