/**
 * The {@link LeaseStore} on a NATS JetStream KV key (`fleet-leases` / `operator` by default):
 * `create` fails when the key exists and `update` names the revision it replaces, so the
 * server arbitrates every race, as etcd does for a Kubernetes Lease.
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  errorMessage,
  LEASE_BUCKET,
  LeaseRecord,
  OPERATOR_LEASE_KEY,
  parseJsonWith,
} from "../core/mod.ts";
import { ensureBucket, isWrongLastSequence } from "../adapters/nats/mod.ts";
import {
  type LeaseStore,
  LeaseStoreError,
  type LeaseWrite,
  type StoredLease,
} from "./lease_store.ts";

/** Where the lease lives and how its bucket is created. */
export interface NatsLeaseOptions {
  /** Copies of the bucket when this replica creates it: 1 on one machine, 3 on a cluster. */
  replicas: number;
  /** @default "fleet-leases" */
  bucket?: string;
  /** @default "operator" */
  key?: string;
}

/** A NATS KV key as a {@link LeaseStore}; the bucket is created on first use. */
export class NatsLeaseStore implements LeaseStore {
  readonly description: string;
  readonly #nc: NatsConnection;
  readonly #replicas: number;
  readonly #bucket: string;
  readonly #key: string;
  #kv: KV | undefined;

  constructor(nc: NatsConnection, options: NatsLeaseOptions) {
    this.#nc = nc;
    this.#replicas = options.replicas;
    this.#bucket = options.bucket ?? LEASE_BUCKET;
    this.#key = options.key ?? OPERATOR_LEASE_KEY;
    this.description = `lease "${this.#key}" in the NATS bucket "${this.#bucket}"`;
  }

  async get(): Promise<StoredLease | undefined> {
    const kv = await this.#open();
    let entry;
    try {
      entry = await kv.get(this.#key);
    } catch (error) {
      throw this.#error("read", error);
    }
    // A deleted or purged key reads as a DEL/PURGE entry, not null (DESIGN.md §8).
    if (entry === null || entry.operation !== "PUT") return undefined;
    let record;
    try {
      record = parseJsonWith(LeaseRecord, entry.value, this.description);
    } catch (error) {
      throw new LeaseStoreError(
        `${(error as Error).message}; delete it (nats kv del ${this.#bucket} ${this.#key}) ` +
          `and the replicas elect a leader again`,
        this.description,
        { cause: error },
      );
    }
    return { record, revision: String(entry.revision) };
  }

  async create(record: LeaseRecord): Promise<LeaseWrite> {
    const kv = await this.#open();
    // kv.create() also succeeds over a deleted key, conditional on the delete's revision.
    return await this.#write("create", () => kv.create(this.#key, JSON.stringify(record)));
  }

  async update(record: LeaseRecord, revision: string): Promise<LeaseWrite> {
    const expected = Number(revision);
    if (!Number.isSafeInteger(expected) || expected < 1) {
      throw new LeaseStoreError(
        `Cannot update the ${this.description}: "${revision}" is not a KV revision`,
        this.description,
      );
    }
    const kv = await this.#open();
    return await this.#write(
      "update",
      () => kv.update(this.#key, JSON.stringify(record), expected),
    );
  }

  async #write(verb: string, write: () => Promise<number>): Promise<LeaseWrite> {
    try {
      return { outcome: "written", revision: String(await write()) };
    } catch (error) {
      if (isWrongLastSequence(error)) return { outcome: "conflict" };
      throw this.#error(verb, error);
    }
  }

  /** The bucket, created if needed; a failure is retried on the next call. */
  async #open(): Promise<KV> {
    if (this.#kv) return this.#kv;
    try {
      this.#kv = await ensureBucket(this.#nc, this.#bucket, {
        replicas: this.#replicas,
        history: 1,
      });
    } catch (error) {
      throw this.#error("open the bucket of", error);
    }
    return this.#kv;
  }

  #error(verb: string, error: unknown): LeaseStoreError {
    const message = errorMessage(error);
    return new LeaseStoreError(
      `Cannot ${verb} the ${this.description}: ${message}`,
      this.description,
      { cause: error },
    );
  }
}
