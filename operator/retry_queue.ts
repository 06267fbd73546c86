/**
 * Failed writes waiting for their retry, one timer per key, spaced by exponential backoff
 * with jitter ({@link backoffDelay}): a key that keeps failing, say on a permission denial,
 * is retried ever more slowly instead of in a hot loop, and a success starts it over — the
 * per-item rate limiting of controller-runtime's work queue. A key is a deployment (its
 * status, its release) or one device's desired state for a deployment.
 * @module
 */
import {
  backoffDelay,
  type BackoffPolicy,
  type Clock,
  DEFAULT_BACKOFF,
  type DeploymentRef,
  type Timer,
} from "../core/mod.ts";
import { DeploymentMap } from "./deployment_map.ts";

/** Options of {@link RetryQueue}. */
export interface RetryQueueOptions {
  clock: Clock;
  /** Called when a key of `ref` is due for its retry: the deployment should be looked at again. */
  onDue: (ref: DeploymentRef) => void;
  /** @default DEFAULT_BACKOFF (100 ms doubling to 30 s, jitter 0.2) */
  policy?: BackoffPolicy;
  /** A number in [0, 1) for the jitter. @default Math.random */
  random?: () => number;
}

interface Entry {
  failures: number;
  /** Set while the retry waits for its time. */
  timer: Timer | undefined;
}

/** The deployment itself, as opposed to one of its devices. */
const WHOLE = "";

/** Keys that failed, with their consecutive failure counts and pending retries. */
export class RetryQueue {
  readonly #clock: Clock;
  readonly #onDue: (ref: DeploymentRef) => void;
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  /** deployment → device id (or WHOLE) → entry. */
  readonly #entries = new DeploymentMap<Map<string, Entry>>();

  constructor(options: RetryQueueOptions) {
    this.#clock = options.clock;
    this.#onDue = options.onDue;
    this.#policy = options.policy ?? DEFAULT_BACKOFF;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Records one more failure of the key (`ref`, or one device's key of it) and schedules
   * `onDue(ref)` after its backoff, replacing a retry already pending.
   * @returns the failure count and the delay chosen, for the log
   */
  failed(ref: DeploymentRef, deviceId?: string): { failures: number; delayMs: number } {
    let keys = this.#entries.get(ref);
    if (!keys) this.#entries.set(ref, keys = new Map());
    const part = deviceId ?? WHOLE;
    const entry = keys.get(part) ?? { failures: 0, timer: undefined };
    keys.set(part, entry);
    entry.failures++;
    entry.timer?.cancel();
    const delayMs = backoffDelay(entry.failures, this.#random(), this.#policy);
    const due = { namespace: ref.namespace, name: ref.name };
    entry.timer = this.#clock.timer(delayMs, () => {
      entry.timer = undefined;
      this.#onDue(due);
    });
    return { failures: entry.failures, delayMs };
  }

  /** Whether the key waits for its retry: writing it before then would defeat the backoff. */
  waiting(ref: DeploymentRef, deviceId?: string): boolean {
    return this.#entries.get(ref)?.get(deviceId ?? WHOLE)?.timer !== undefined;
  }

  /** Whether the key failed and has not succeeded since. */
  failing(ref: DeploymentRef, deviceId?: string): boolean {
    return this.#entries.get(ref)?.has(deviceId ?? WHOLE) ?? false;
  }

  /** The devices of `ref` whose key failed and has not succeeded since. */
  failingDevices(ref: DeploymentRef): string[] {
    return [...this.#entries.get(ref)?.keys() ?? []].filter((part) => part !== WHOLE);
  }

  /** A success, or a key no longer to write: its next failure starts the backoff over. */
  forget(ref: DeploymentRef, deviceId?: string): void {
    const keys = this.#entries.get(ref);
    const part = deviceId ?? WHOLE;
    keys?.get(part)?.timer?.cancel();
    keys?.delete(part);
    if (keys?.size === 0) this.#entries.delete(ref);
  }

  /** Cancels every pending retry (the operator stops). */
  clear(): void {
    for (const keys of this.#entries.values()) {
      for (const entry of keys.values()) entry.timer?.cancel();
    }
    this.#entries.clear();
  }

  /** Keys that failed and have not succeeded since. */
  get size(): number {
    let size = 0;
    for (const keys of this.#entries.values()) size += keys.size;
    return size;
  }
}
