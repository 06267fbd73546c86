/**
 * The agent's view of its desired state, fed by the KV watch (or the disk cache), with
 * the rule for when a deployment that disappeared may have its containers removed.
 */
import {
  type DeploymentRef,
  type DesiredEntry,
  DesiredState,
  parseJsonWith,
  parseKey,
  refKey,
  resolveScore,
  revisionHash,
  UNKNOWN_GENERATION,
} from "../core/mod.ts";

/** The generation of a value that failed validation, when it can still be read. */
function salvageGeneration(raw: string): number {
  try {
    const value: unknown = JSON.parse(raw);
    if (value && typeof value === "object" && "generation" in value) {
      const g = value.generation;
      if (typeof g === "number" && Number.isInteger(g) && g >= 0) return g;
    }
  } catch {
    // Not JSON at all: the generation is unknown, which the aggregate understands.
  }
  return UNKNOWN_GENERATION;
}

/** Turns one desired-state value into a runnable entry or an explained failure. */
export function toEntry(ref: DeploymentRef, raw: string): DesiredEntry {
  let state: DesiredState;
  try {
    state = parseJsonWith(DesiredState, raw, "desired state");
  } catch (error) {
    return { ref, generation: salvageGeneration(raw), error: (error as Error).message };
  }
  if (state.namespace !== ref.namespace || state.name !== ref.name) {
    return {
      ref,
      generation: state.generation,
      error:
        `desired state names ${state.namespace}/${state.name} but is stored under ${ref.namespace}/${ref.name}`,
    };
  }
  // Hashed as received, before the device policy fills in limits: the control plane's hash.
  const revision = revisionHash(state.score);
  try {
    return {
      ref,
      generation: state.generation,
      score: resolveScore(state.score),
      revision,
      ...(state.minReadySeconds === undefined ? {} : { minReadyMs: state.minReadySeconds * 1000 }),
      ...(state.retry === undefined ? {} : { retry: state.retry }),
    };
  } catch (error) {
    return { ref, generation: state.generation, error: (error as Error).message, revision };
  }
}

export type KeyProblem = { key: string; reason: string };

export class DesiredView {
  readonly #deviceId: string;
  readonly #graceMs: number;
  /** refKey → raw JSON value, as last seen. */
  readonly #raw = new Map<string, string>();
  readonly #entries = new Map<string, DesiredEntry>();
  /** Keys delivered since the current read began (live updates included). */
  #seen = new Set<string>();
  /** refKey → when (monotonic ms) a complete read first missed it. */
  readonly #absentSince = new Map<string, number>();
  #complete = false;

  constructor(deviceId: string, orphanGraceMs: number) {
    this.#deviceId = deviceId;
    this.#graceMs = orphanGraceMs;
  }

  /** Whether a complete read of the desired state has happened since start. */
  get complete(): boolean {
    return this.#complete;
  }

  /** Seeds the view from the disk cache; the cache never counts as a complete read. */
  seed(values: ReadonlyMap<string, string>): void {
    for (const [ref, raw] of values) {
      const parsed = parseKey.deployment(ref);
      if (parsed) this.#set(parsed, raw);
    }
  }

  /** Applies a put from the watch. Returns a problem when the key is not this device's. */
  put(key: string, raw: string): KeyProblem | undefined {
    const parsed = parseKey.desiredState(key);
    if (!parsed || parsed.deviceId !== this.#deviceId) {
      return { key, reason: "the key does not have the form <deviceId>.<namespace>.<deployment>" };
    }
    this.#seen.add(refKey(parsed.ref));
    this.#absentSince.delete(refKey(parsed.ref));
    if (this.#raw.get(refKey(parsed.ref)) === raw) return undefined;
    this.#set(parsed.ref, raw);
    return undefined;
  }

  /** Applies an explicit delete: the containers may go at once. Other devices' keys are ignored. */
  delete(key: string): void {
    const parsed = parseKey.desiredState(key);
    if (!parsed || parsed.deviceId !== this.#deviceId) return;
    const ref = refKey(parsed.ref);
    this.#raw.delete(ref);
    this.#entries.delete(ref);
    this.#absentSince.delete(ref);
    this.#seen.add(ref);
  }

  /** A new read of the bucket begins (the watch restarted): only what it delivers counts. */
  readStarted(): void {
    this.#seen = new Set();
  }

  /**
   * Marks the end of a complete read. Deployments the read did not contain leave the
   * desired set, but their containers stay for the grace period: a wiped or rebuilt bucket
   * is refilled by the operator within it, and nothing is recreated.
   * @param now monotonic ms, so that a step of the wall clock neither ends nor stretches
   *   the grace period
   */
  readComplete(now: number): void {
    for (const ref of [...this.#entries.keys()]) {
      if (this.#seen.has(ref)) continue;
      this.#entries.delete(ref);
      this.#raw.delete(ref);
      if (!this.#absentSince.has(ref)) this.#absentSince.set(ref, now);
    }
    this.#complete = true;
  }

  entries(): ReadonlyMap<string, DesiredEntry> {
    return this.#entries;
  }

  /** Raw values by refKey, for the disk cache. */
  rawValues(): ReadonlyMap<string, string> {
    return this.#raw;
  }

  /**
   * Deployments without desired state whose containers must stay: all of them before the
   * first complete read, then only those still within the grace period.
   * @param now monotonic ms, on the same clock as {@link readComplete}'s
   */
  retained(observedRefs: Iterable<string>, now: number): Set<string> {
    const keep = new Set<string>();
    for (const ref of observedRefs) {
      if (this.#entries.has(ref)) continue;
      if (!this.#complete) {
        keep.add(ref);
        continue;
      }
      const since = this.#absentSince.get(ref);
      if (since !== undefined && now - since < this.#graceMs) keep.add(ref);
    }
    return keep;
  }

  /** Forgets a grace timer once the deployment's containers are gone. */
  settled(ref: string): void {
    this.#absentSince.delete(ref);
  }

  #set(ref: DeploymentRef, raw: string): void {
    this.#raw.set(refKey(ref), raw);
    this.#entries.set(refKey(ref), toEntry(ref, raw));
  }
}
