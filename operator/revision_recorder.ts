/**
 * Records a deployment's revisions (DESIGN.md §9 "Revisions and rollout"): every change of its
 * workload becomes a revision in the {@link RevisionStore}, numbered one above the last, and
 * only the newest few are kept, so that `fleet rollout history` can show them and a rollback
 * needs nothing from the user. What a revision is, and which to keep, is core/revisions.ts'
 * decision; this controller reads the deployments, decides, writes, and retries a failed write
 * with backoff. A deleted deployment's revisions go with it.
 */
import type { BackoffPolicy, Clock } from "../core/mod.ts";
import type { DeploymentRef } from "../core/keys.ts";
import type { StoredDeployment } from "../core/deployment.ts";
import { DEFAULT_REVISION_HISTORY, recordRevision, type Revision } from "../core/revisions.ts";
import type { Logger } from "../adapters/logger.ts";
import type { SourceEvent } from "./deployment_source.ts";
import { DeploymentMap } from "./deployment_map.ts";
import { RetryQueue } from "./retry_queue.ts";
import type { RevisionStore } from "./revision_store.ts";

/** Options of {@link RevisionRecorder}. */
export interface RevisionRecorderOptions {
  store: RevisionStore;
  clock: Clock;
  log: Logger;
  /** Revisions kept per deployment. @default DEFAULT_REVISION_HISTORY */
  keep?: number;
  /** @default DEFAULT_BACKOFF */
  retry?: BackoffPolicy;
  /** Revisions of a deployment never dropped (a rollout's stable and current ones). */
  pinned?: (ref: DeploymentRef) => readonly number[];
  /** Told when a deployment's kept revisions are known or changed. */
  recorded?: (ref: DeploymentRef) => void;
}

/** The latest wish for a deployment: its spec, or gone. */
type Wanted = StoredDeployment | "deleted";

export class RevisionRecorder {
  readonly #store: RevisionStore;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #keep: number;
  readonly #retries: RetryQueue;
  /** What the store holds, once read. */
  readonly #histories = new DeploymentMap<Revision[]>();
  readonly #wanted = new DeploymentMap<Wanted>();
  readonly #busy = new DeploymentMap<true>();
  readonly #pinned: (ref: DeploymentRef) => readonly number[];
  readonly #recorded: (ref: DeploymentRef) => void;

  constructor(options: RevisionRecorderOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#keep = options.keep ?? DEFAULT_REVISION_HISTORY;
    this.#pinned = options.pinned ?? (() => []);
    this.#recorded = options.recorded ?? (() => {});
    this.#retries = new RetryQueue({
      clock: options.clock,
      onDue: (ref) => void this.#drain(ref),
      ...(options.retry ? { policy: options.retry } : {}),
    });
  }

  /** Takes a deployment's change from the source. */
  onSource(event: SourceEvent): void {
    if (event.type === "upsert") {
      this.#want(refOf(event.deployment), event.deployment);
    } else if (event.type === "delete") {
      this.#want(event.ref, "deleted");
    }
  }

  /** The kept revisions of `ref`, oldest first; undefined until they were read. */
  historyOf(ref: DeploymentRef): readonly Revision[] | undefined {
    return this.#histories.get(ref);
  }

  /** Cancels pending retries (the operator stops). */
  stop(): void {
    this.#retries.clear();
  }

  #want(ref: DeploymentRef, wanted: Wanted): void {
    this.#wanted.set(ref, wanted);
    void this.#drain(ref);
  }

  /** Writes the latest wish of `ref`, one write at a time, until none is left. */
  async #drain(ref: DeploymentRef): Promise<void> {
    if (this.#busy.has(ref) || this.#retries.waiting(ref)) return;
    this.#busy.set(ref, true);
    try {
      for (let wanted = this.#wanted.get(ref); wanted; wanted = this.#wanted.get(ref)) {
        this.#wanted.delete(ref);
        try {
          await this.#sync(ref, wanted);
          this.#retries.forget(ref);
        } catch (error) {
          // A newer wish, if one came meanwhile, is written at the retry instead.
          if (!this.#wanted.has(ref)) this.#wanted.set(ref, wanted);
          const { failures, delayMs } = this.#retries.failed(ref);
          this.#log.warn(
            `Could not record the revisions of ${ref.namespace}/${ref.name}: ` +
              `${(error as Error).message}; retrying in ${Math.round(delayMs)} ms`,
            { failures },
          );
          return;
        }
      }
    } finally {
      this.#busy.delete(ref);
    }
  }

  async #sync(ref: DeploymentRef, wanted: Wanted): Promise<void> {
    const history = this.#histories.get(ref) ?? await this.#store.list(ref);
    if (wanted === "deleted") {
      await this.#store.remove(ref, history.map((r) => r.number));
      this.#histories.delete(ref);
      return;
    }
    const known = this.#histories.has(ref);
    this.#histories.set(ref, history);
    const recorded = recordRevision(history, {
      score: wanted.spec.score,
      generation: wanted.metadata.generation,
      now: this.#clock.now(),
      keep: this.#keep,
      pinned: this.#pinned(ref),
    });
    if (!recorded.created) {
      if (!known) this.#recorded(ref);
      return;
    }
    await this.#store.put(ref, recorded.revision);
    const kept = new Set(recorded.revisions.map((r) => r.number));
    await this.#store.remove(ref, history.filter((r) => !kept.has(r.number)).map((r) => r.number));
    this.#histories.set(ref, recorded.revisions);
    this.#recorded(ref);
    this.#log.info(
      `Deployment ${ref.namespace}/${ref.name} is at revision ${recorded.revision.number}: ` +
        recorded.revision.change,
    );
  }
}

function refOf(deployment: StoredDeployment): DeploymentRef {
  return { namespace: deployment.metadata.namespace, name: deployment.metadata.name };
}
