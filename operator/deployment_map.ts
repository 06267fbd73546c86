/**
 * Collections keyed by {@link DeploymentRef}: the one place in the operator where a
 * reference becomes a string key (`<namespace>.<name>`, unambiguous since neither may hold
 * a dot). Everything else passes typed references around.
 * @module
 */
import { type DeploymentRef, refKey } from "../core/mod.ts";

/** A plain reference, without the other fields of the object it was taken from. */
function plainRef(ref: DeploymentRef): DeploymentRef {
  return { namespace: ref.namespace, name: ref.name };
}

/** A `Map` from deployment to `V`; iterates in insertion order like `Map`. */
export class DeploymentMap<V> implements Iterable<[DeploymentRef, V]> {
  readonly #entries = new Map<string, { ref: DeploymentRef; value: V }>();

  get size(): number {
    return this.#entries.size;
  }

  get(ref: DeploymentRef): V | undefined {
    return this.#entries.get(refKey(ref))?.value;
  }

  has(ref: DeploymentRef): boolean {
    return this.#entries.has(refKey(ref));
  }

  set(ref: DeploymentRef, value: V): this {
    this.#entries.set(refKey(ref), { ref: plainRef(ref), value });
    return this;
  }

  /** True when it was there. */
  delete(ref: DeploymentRef): boolean {
    return this.#entries.delete(refKey(ref));
  }

  clear(): void {
    this.#entries.clear();
  }

  *keys(): IterableIterator<DeploymentRef> {
    for (const { ref } of this.#entries.values()) yield ref;
  }

  *values(): IterableIterator<V> {
    for (const { value } of this.#entries.values()) yield value;
  }

  *entries(): IterableIterator<[DeploymentRef, V]> {
    for (const { ref, value } of this.#entries.values()) yield [ref, value];
  }

  [Symbol.iterator](): IterableIterator<[DeploymentRef, V]> {
    return this.entries();
  }
}

/** A `Set` of deployments. */
export class DeploymentSet implements Iterable<DeploymentRef> {
  readonly #map = new DeploymentMap<true>();

  constructor(refs: Iterable<DeploymentRef> = []) {
    for (const ref of refs) this.add(ref);
  }

  get size(): number {
    return this.#map.size;
  }

  has(ref: DeploymentRef): boolean {
    return this.#map.has(ref);
  }

  add(ref: DeploymentRef): this {
    this.#map.set(ref, true);
    return this;
  }

  /** True when it was there. */
  delete(ref: DeploymentRef): boolean {
    return this.#map.delete(ref);
  }

  clear(): void {
    this.#map.clear();
  }

  [Symbol.iterator](): IterableIterator<DeploymentRef> {
    return this.#map.keys();
  }
}
