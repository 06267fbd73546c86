/**
 * The {@link PopulationStore} on NATS: chunks in the `fleet-revisions` bucket beside the
 * deployment's revisions (core/rollout_population.ts), which the operator already keeps and
 * writes, and people may read.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Buckets, type DeploymentRef } from "../core/keys.ts";
import { parseJsonWith } from "../core/errors.ts";
import type { RolloutDevice } from "../core/rollout.ts";
import {
  chunkPopulation,
  joinPopulation,
  PopulationChunk,
  populationKey,
  populationKeys,
} from "../core/rollout_population.ts";
import type { Logger } from "../adapters/logger.ts";
import { lazyBucket, readBucket } from "../adapters/nats/mod.ts";
import type { PopulationStore } from "./population_store.ts";

export class NatsPopulations implements PopulationStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #bucket: () => Promise<KV>;

  /** The bucket must exist (see `NatsBucketKeeper`); it is bound to, not created. */
  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
    this.#bucket = lazyBucket(nc, Buckets.revisions);
  }

  async #chunks(ref: DeploymentRef): Promise<Map<string, PopulationChunk>> {
    const values = await readBucket(this.#nc, Buckets.revisions, this.#log, {
      keyFilter: populationKeys(ref),
    });
    const chunks = new Map<string, PopulationChunk>();
    for (const [key, value] of values) {
      try {
        chunks.set(key, parseJsonWith(PopulationChunk, value, `rollout population ${key}`));
      } catch (error) {
        // Unreadable: the population is not whole, the rollout freezes a new one.
        this.#log.warn(`Ignoring ${key}: ${(error as Error).message}`);
      }
    }
    return chunks;
  }

  async load(ref: DeploymentRef) {
    return joinPopulation([...(await this.#chunks(ref)).values()]);
  }

  async save(ref: DeploymentRef, revision: number, devices: readonly RolloutDevice[]) {
    const kv = await this.#bucket();
    const before = await this.#chunks(ref);
    const chunks = chunkPopulation(revision, devices);
    for (const chunk of chunks) {
      await kv.put(populationKey(ref, chunk.chunk), JSON.stringify(chunk));
    }
    // Chunks of a larger population before: joinPopulation would refuse the mix anyway.
    for (let n = chunks.length; n < before.size; n++) await kv.delete(populationKey(ref, n));
  }

  async remove(ref: DeploymentRef) {
    const kv = await this.#bucket();
    for (const key of (await this.#chunks(ref)).keys()) await kv.delete(key);
  }
}
