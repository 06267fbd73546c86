/**
 * The {@link RevisionStore} on NATS: the `fleet-revisions` bucket, one key per revision,
 * `<namespace>.<deployment>.<number>` (a revision carries a workload of up to 256 KiB: ten in
 * one value would not fit a message). People read it too (`fleet rollout history`).
 * Also the {@link PopulationStore}: a rollout's frozen population, in chunks beside the
 * revisions (`<namespace>.<deployment>.population.<n>`, core/rollout_population.ts).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Buckets, type DeploymentRef, keys } from "../core/keys.ts";
import { parseJsonWith } from "../core/errors.ts";
import { Revision } from "../core/revisions.ts";
import type { RolloutDevice } from "../core/rollout.ts";
import {
  chunkPopulation,
  joinPopulation,
  PopulationChunk,
  populationKey,
  populationKeys,
} from "../core/rollout_population.ts";
import type * as z from "zod";
import type { Logger } from "../adapters/logger.ts";
import { lazyBucket, readBucket } from "../adapters/nats/mod.ts";
import type { RevisionStore } from "./revision_store.ts";
import type { PopulationStore } from "./population_store.ts";

export class NatsRevisions implements RevisionStore, PopulationStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #bucket: () => Promise<KV>;

  /** The bucket must exist (see `NatsBucketKeeper`); it is bound to, not created. */
  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
    this.#bucket = lazyBucket(nc, Buckets.revisions);
  }

  /** The values under `keyFilter` that `schema` reads; another writer's or a damaged one is skipped. */
  async #read<T>(keyFilter: string, schema: z.ZodType<T>, what: string): Promise<Map<string, T>> {
    const values = await readBucket(this.#nc, Buckets.revisions, this.#log, { keyFilter });
    const parsed = new Map<string, T>();
    for (const [key, value] of values) {
      try {
        parsed.set(key, parseJsonWith(schema, value, `${what} ${key}`));
      } catch (error) {
        this.#log.warn(`Ignoring ${what} ${key}: ${(error as Error).message}`);
      }
    }
    return parsed;
  }

  async list(ref: DeploymentRef): Promise<Revision[]> {
    const revisions = await this.#read(keys.revisionsOf(ref), Revision, "revision");
    return [...revisions.values()].sort((a, b) => a.number - b.number);
  }

  async put(ref: DeploymentRef, revision: Revision): Promise<void> {
    await (await this.#bucket()).put(keys.revision(ref, revision.number), JSON.stringify(revision));
  }

  async remove(ref: DeploymentRef, numbers: readonly number[]): Promise<void> {
    const kv = await this.#bucket();
    for (const number of numbers) await kv.delete(keys.revision(ref, number));
  }

  async load(ref: DeploymentRef) {
    const chunks = await this.#read(populationKeys(ref), PopulationChunk, "rollout population");
    // A chunk missing or unreadable: not whole, and the rollout freezes a new one.
    return joinPopulation([...chunks.values()]);
  }

  async save(ref: DeploymentRef, revision: number, devices: readonly RolloutDevice[]) {
    const kv = await this.#bucket();
    const before = await this.#read(populationKeys(ref), PopulationChunk, "rollout population");
    const chunks = chunkPopulation(revision, devices);
    for (const chunk of chunks) {
      await kv.put(populationKey(ref, chunk.chunk), JSON.stringify(chunk));
    }
    // Chunks of a larger population before: joinPopulation would refuse the mix anyway.
    for (let n = chunks.length; n < before.size; n++) await kv.delete(populationKey(ref, n));
  }

  async removePopulation(ref: DeploymentRef) {
    const kv = await this.#bucket();
    const chunks = await this.#read(populationKeys(ref), PopulationChunk, "rollout population");
    for (const key of chunks.keys()) await kv.delete(key);
  }
}
