/**
 * The {@link LeaseStore} on a Kubernetes `coordination.k8s.io/v1` Lease: compare-and-set on
 * its `resourceVersion`, so the Lease reads in `kubectl get lease` as client-go's do.
 * @module
 */
import * as z from "zod";
import { KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import { LeaseType, ObjectMeta } from "./kube_resources.ts";
import {
  type LeaseRecord,
  type LeaseStore,
  LeaseStoreError,
  type LeaseWrite,
  type StoredLease,
} from "./lease_store.ts";
import { errorMessage } from "../core/errors.ts";

/**
 * The name of the operator's leader-election Lease. The Helm chart creates the Lease and grants
 * the operator get and update on this name only (RBAC cannot limit `create` to a name).
 */
export const OPERATOR_LEASE_NAME = "fleet-operator";

/** What a Lease without a duration is taken to last: client-go's default. */
const DEFAULT_LEASE_DURATION_SECONDS = 15;

const LeaseSpec = z.object({
  holderIdentity: z.string().nullish(),
  leaseDurationSeconds: z.number().int().nullish(),
  acquireTime: z.string().nullish(),
  renewTime: z.string().nullish(),
  leaseTransitions: z.number().int().nullish(),
});
type LeaseSpec = z.infer<typeof LeaseSpec>;
const LeaseResponse = z.object({ metadata: ObjectMeta, spec: LeaseSpec.default({}) });
/** A Lease as this program writes it. */
interface LeaseObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: LeaseSpec;
}

/** Where the Lease lives. */
export interface KubeLeaseOptions {
  namespace: string;
  /** Lease name, shared by all replicas. */
  name: string;
}

/** A Kubernetes Lease as a {@link LeaseStore}. */
export class KubeLeaseStore implements LeaseStore {
  readonly description: string;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #name: string;

  constructor(client: KubeClient, options: KubeLeaseOptions) {
    this.#client = client;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.description = `Lease ${options.namespace}/${options.name}`;
  }

  async get(): Promise<StoredLease | undefined> {
    const raw = await this.#call(
      "read",
      () => this.#client.get(LeaseType, this.#name, this.#namespace),
    );
    if (raw === undefined) return undefined;
    const parsed = LeaseResponse.safeParse(raw);
    const revision = parsed.data?.metadata.resourceVersion;
    if (!parsed.success || revision === undefined) {
      throw new LeaseStoreError(
        `The ${this.description} is not a Lease this program can read` +
          (parsed.error ? ` (${parsed.error.message})` : " (no resourceVersion)") +
          `; delete it with kubectl -n ${this.#namespace} delete lease ${this.#name}`,
        this.description,
      );
    }
    const spec = parsed.data.spec;
    return {
      revision,
      record: {
        holderIdentity: spec.holderIdentity ?? "",
        leaseDurationSeconds: spec.leaseDurationSeconds ?? DEFAULT_LEASE_DURATION_SECONDS,
        acquireTime: spec.acquireTime ?? "",
        renewTime: spec.renewTime ?? "",
        leaseTransitions: spec.leaseTransitions ?? 0,
      },
    };
  }

  async create(record: LeaseRecord): Promise<LeaseWrite> {
    return await this.#write("create", () => this.#client.create(LeaseType, this.#lease(record)));
  }

  async update(record: LeaseRecord, revision: string): Promise<LeaseWrite> {
    return await this.#write(
      "update",
      () => this.#client.replace(LeaseType, this.#lease(record, revision)),
    );
  }

  /** The Lease object holding `record`; with `resourceVersion`, a conditional replace. */
  #lease(record: LeaseRecord, resourceVersion?: string): LeaseObject {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.#name,
        namespace: this.#namespace,
        ...(resourceVersion === undefined ? {} : { resourceVersion }),
      },
      spec: leaseSpec(record),
    };
  }

  /** A create or replace: 409 (exists, or a stale resourceVersion) is a conflict. */
  async #write(
    verb: "create" | "update",
    write: () => Promise<LeaseObject>,
  ): Promise<LeaseWrite> {
    let written;
    try {
      written = await write();
    } catch (error) {
      if (error instanceof KubeApiError && error.isConflict()) return { outcome: "conflict" };
      throw this.#error(verb, error);
    }
    return { outcome: "written", revision: written.metadata.resourceVersion ?? "" };
  }

  async #call<T>(verb: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.#error(verb, error);
    }
  }

  #error(verb: string, error: unknown): LeaseStoreError {
    const message = errorMessage(error);
    // The chart's Role allows reading and renewing this Lease, not creating one.
    const hint = verb === "create" && error instanceof KubeApiError && error.isForbidden()
      ? "; the operator may only read and renew this Lease, which the Helm chart creates: " +
        "run helm upgrade to put it back"
      : "";
    return new LeaseStoreError(
      `Cannot ${verb} the ${this.description} in Kubernetes: ${message}${hint}`,
      this.description,
      { cause: error },
    );
  }
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(time: string): string | null {
  if (time === "") return null;
  return time.replace(/\.(\d{3})Z$/, ".$1000Z");
}

function leaseSpec(record: LeaseRecord): LeaseSpec {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: microTime(record.acquireTime),
    renewTime: microTime(record.renewTime),
    leaseTransitions: record.leaseTransitions,
  };
}
