/**
 * Gives back the V8 heap pages a burst of work left behind. V8 grows its heap for a burst (a
 * process's start: parsing and running its modules) and keeps the pages until a collection
 * compacts the heap, which an idle process rarely runs: an idle agent kept about 5 MB it no
 * longer used (bench:agent). A last-resort collection compacts the heap and releases them.
 * @module
 */

/** The V8 heap of this process, as the agent's heap keeper sees it. */
export interface V8Heap {
  /** Bytes V8 holds for its heap now (`Deno.memoryUsage().heapTotal`). */
  total(): number;
  /** Compacts the heap; `undefined` when V8's gc is not exposed. See {@link releaseSpareHeap}. */
  release(): HeapRelease | undefined;
}

/** This process's heap. */
export const processHeap: V8Heap = {
  total: () => Deno.memoryUsage().heapTotal,
  release: () => releaseSpareHeap(),
};

/** What a collection freed, in bytes of V8 heap (`Deno.memoryUsage().heapTotal`). */
export interface HeapRelease {
  heapBefore: number;
  heapAfter: number;
}

/** V8's `gc()` as `--expose-gc` defines it, with the options this module uses. */
type ExposedGc = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

/**
 * Runs V8's last-resort collection: every unreachable object freed, the heap compacted, free
 * pages returned to the system. It needs V8's `--expose-gc` (the agent unit's
 * `DENO_V8_FLAGS`); without it nothing runs and `undefined` is returned.
 */
export function releaseSpareHeap(): HeapRelease | undefined {
  const gc: unknown = Reflect.get(globalThis, "gc");
  if (typeof gc !== "function") return undefined;
  const heapBefore = Deno.memoryUsage().heapTotal;
  (gc as ExposedGc)({ type: "major", execution: "sync", flavor: "last-resort" });
  return { heapBefore, heapAfter: Deno.memoryUsage().heapTotal };
}
