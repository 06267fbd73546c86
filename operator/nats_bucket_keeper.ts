/** The {@link BucketKeeper} on NATS: the JetStream KV buckets of DESIGN.md §2. */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  AUDIT_STREAM,
  BUCKET_HISTORY,
  type BucketName,
  Buckets,
  type Clock,
  REPORT_BUCKETS,
  ROLLOUT_ACTIONS_STREAM,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import {
  applyBucketLimits,
  ensureAuditStream,
  ensureBucket,
  ensureBucketRetrying,
  ensureRolloutActionsStream,
  hasJetStreamCode,
  JetStreamCodes,
  refuseRollups,
} from "../adapters/nats/mod.ts";
import { type BucketKeeper, overfullMessage } from "./bucket_keeper.ts";

/** Creates the KV buckets, finds the missing ones by JetStream's "stream not found" code (10059). */
export class NatsBucketKeeper implements BucketKeeper {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #replicas: number;
  readonly #clock: Clock;

  /** @param replicas copies of each bucket: 1 on one server, 3 on a cluster */
  constructor(options: { nc: NatsConnection; log: Logger; replicas: number; clock: Clock }) {
    this.#nc = options.nc;
    this.#log = options.log;
    this.#replicas = options.replicas;
    this.#clock = options.clock;
  }

  async ensureAll(signal: AbortSignal): Promise<boolean> {
    for (const bucket of Object.values(Buckets)) {
      const kv = await ensureBucketRetrying(this.#nc, bucket, this.#settings(bucket), {
        signal,
        logger: this.#log,
        clock: this.#clock,
      });
      if (!kv) return false;
    }
    try {
      // The audit trail's and the rollout actions' streams.
      await this.ensureStreams();
      for (const bucket of await this.refuseRollups()) {
        this.#log.info(`The "${bucket}" bucket refuses rollups now`);
      }
      const { changed, overfull } = await this.applyLimits();
      for (const bucket of changed) {
        this.#log.info(`The "${bucket}" bucket has its size limits now`);
      }
      for (const bucket of overfull) this.#log.warn(overfullMessage(bucket));
    } catch (error) {
      this.#log.warn(`${(error as Error).message}; retrying at the next bucket audit`);
    }
    return true;
  }

  async missing(): Promise<BucketName[]> {
    const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    const missing: BucketName[] = [];
    for (const bucket of Object.values(Buckets)) {
      try {
        await jsm.streams.info(`KV_${bucket}`);
      } catch (error) {
        if (hasJetStreamCode(error, JetStreamCodes.StreamNotFound)) {
          missing.push(bucket);
        } else throw error;
      }
    }
    return missing;
  }

  async recreate(bucket: BucketName): Promise<void> {
    await ensureBucket(this.#nc, bucket, this.#settings(bucket));
    if (REPORT_BUCKETS.includes(bucket)) await refuseRollups(this.#nc, bucket);
  }

  async refuseRollups(): Promise<BucketName[]> {
    const changed: BucketName[] = [];
    for (const bucket of REPORT_BUCKETS) {
      if (await refuseRollups(this.#nc, bucket)) changed.push(bucket);
    }
    return changed;
  }

  async applyLimits(): Promise<{ changed: BucketName[]; overfull: BucketName[] }> {
    const changed: BucketName[] = [];
    const overfull: BucketName[] = [];
    for (const bucket of Object.values(Buckets)) {
      const result = await applyBucketLimits(this.#nc, bucket);
      if (result.changed) changed.push(bucket);
      if (result.overfull) overfull.push(bucket);
    }
    return { changed, overfull };
  }

  async ensureStreams(): Promise<string[]> {
    const created: string[] = [];
    if (await ensureAuditStream(this.#nc, this.#replicas)) created.push(AUDIT_STREAM);
    if (await ensureRolloutActionsStream(this.#nc, this.#replicas)) {
      created.push(ROLLOUT_ACTIONS_STREAM);
    }
    return created;
  }

  #settings(bucket: BucketName) {
    return { replicas: this.#replicas, history: BUCKET_HISTORY[bucket] };
  }
}
