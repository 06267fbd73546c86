/**
 * A {@link LeaseStore} in memory, shared by the replicas of a test: compare-and-set like the
 * real stores, plus switches that make it fail or hang like an unreachable server.
 */
import type { LeaseRecord, LeaseStore, LeaseWrite, StoredLease } from "../operator/lease_store.ts";
import { LeaseStoreError } from "../operator/lease_store.ts";

/** What every replica of a test sees: one lease and its revision. */
export class MemoryLease {
  #stored: StoredLease | undefined;
  #revision = 0;
  /** Every successful write, in order: `<writer> <holderIdentity>` (`""` when released). */
  readonly writes: string[] = [];

  /** The lease now, as a store would return it. */
  get current(): StoredLease | undefined {
    return this.#stored && structuredClone(this.#stored);
  }

  /** Writes the lease unconditionally, as another program (or a person) might. */
  set(record: LeaseRecord): StoredLease {
    this.#stored = { record: structuredClone(record), revision: String(++this.#revision) };
    return structuredClone(this.#stored);
  }

  /** A store on this lease for one replica; `name` labels its writes. */
  store(name: string): MemoryLeaseStore {
    return new MemoryLeaseStore(this, name);
  }

  /** @internal compare-and-set; `expected` undefined means create. */
  write(writer: string, record: LeaseRecord, expected: string | undefined): LeaseWrite {
    const exists = this.#stored !== undefined;
    if (expected === undefined ? exists : this.#stored?.revision !== expected) {
      return { outcome: "conflict" };
    }
    const stored = this.set(record);
    this.writes.push(`${writer} ${record.holderIdentity}`);
    return { outcome: "written", revision: stored.revision };
  }
}

/** One replica's view of a {@link MemoryLease}; `failing` or `hanging` cut it off. */
export class MemoryLeaseStore implements LeaseStore {
  readonly description = "lease in memory";
  /** Every call rejects, like a server that refuses connections. */
  failing = false;
  /** Every call stays pending forever, like a server that stopped answering. */
  hanging = false;
  readonly #lease: MemoryLease;
  readonly #name: string;

  constructor(lease: MemoryLease, name: string) {
    this.#lease = lease;
    this.#name = name;
  }

  get(): Promise<StoredLease | undefined> {
    return this.#call(() => this.#lease.current);
  }

  create(record: LeaseRecord): Promise<LeaseWrite> {
    return this.#call(() => this.#lease.write(this.#name, record, undefined));
  }

  update(record: LeaseRecord, revision: string): Promise<LeaseWrite> {
    return this.#call(() => this.#lease.write(this.#name, record, revision));
  }

  #call<T>(fn: () => T): Promise<T> {
    if (this.hanging) return new Promise<T>(() => {});
    if (this.failing) {
      return Promise.reject(
        new LeaseStoreError(`Cannot reach the ${this.description}`, this.description),
      );
    }
    return Promise.resolve(fn());
  }
}
