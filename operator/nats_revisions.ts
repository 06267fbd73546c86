/**
 * The {@link RevisionStore} on NATS: the `fleet-revisions` bucket, one key per revision,
 * `<namespace>.<deployment>.<number>` (a revision carries a workload of up to 256 KiB: ten in
 * one value would not fit a message). People read it too (`fleet rollout history`).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Buckets, type DeploymentRef, keys } from "../core/keys.ts";
import { parseJsonWith } from "../core/errors.ts";
import { Revision } from "../core/revisions.ts";
import type { Logger } from "../adapters/logger.ts";
import { lazyBucket, readBucket } from "../adapters/nats/mod.ts";
import type { RevisionStore } from "./revision_store.ts";

export class NatsRevisions implements RevisionStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #bucket: () => Promise<KV>;

  /** The bucket must exist (see `NatsBucketKeeper`); it is bound to, not created. */
  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
    this.#bucket = lazyBucket(nc, Buckets.revisions);
  }

  async list(ref: DeploymentRef): Promise<Revision[]> {
    const values = await readBucket(this.#nc, Buckets.revisions, this.#log, {
      keyFilter: keys.revisionsOf(ref),
    });
    const revisions: Revision[] = [];
    for (const [key, value] of values) {
      try {
        revisions.push(parseJsonWith(Revision, value, `revision ${key}`));
      } catch (error) {
        // Another writer's or a damaged value: the history goes on without it.
        this.#log.warn(`Ignoring revision ${key}: ${(error as Error).message}`);
      }
    }
    return revisions.sort((a, b) => a.number - b.number);
  }

  async put(ref: DeploymentRef, revision: Revision): Promise<void> {
    await (await this.#bucket()).put(keys.revision(ref, revision.number), JSON.stringify(revision));
  }

  async remove(ref: DeploymentRef, numbers: readonly number[]): Promise<void> {
    const kv = await this.#bucket();
    for (const number of numbers) await kv.delete(keys.revision(ref, number));
  }
}
