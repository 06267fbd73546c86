/**
 * How a rollout's frozen population is stored (DESIGN.md §9): the devices the deployment
 * matched when the rollout of a revision started, with their labels then, in the rollout's
 * order. At 100,000 devices that is megabytes, too much for one status: it is cut into chunks,
 * each a value of the `fleet-revisions` bucket under `<namespace>.<deployment>.population.<n>`,
 * small enough for a message. A restarted operator reads them back and resumes the same
 * batches. Pure.
 * @module
 */
import * as z from "zod";
import { validateIdentifier } from "./ids.ts";
import { type DeploymentRef, refKey } from "./keys.ts";
import type { RolloutDevice } from "./rollout.ts";

/** Bytes of devices per chunk: well under a `fleet-revisions` value's 256 KiB. */
export const POPULATION_CHUNK_BYTES = 192 * 1024;

/** One chunk (a wire type: readers ignore unknown fields). */
export const PopulationChunk = z.object({
  /** The revision whose rollout froze it. */
  revision: z.number().int().positive(),
  /** 0-based; `chunks` of the same revision make the population. */
  chunk: z.number().int().nonnegative(),
  chunks: z.number().int().positive(),
  /** Devices in the rollout's order: `[id, labels]`. */
  devices: z.array(z.tuple([z.string(), z.record(z.string(), z.string())])),
});
export type PopulationChunk = z.infer<typeof PopulationChunk>;

/** The key of chunk `chunk` of the population of `ref`'s rollout. */
export function populationKey(ref: DeploymentRef, chunk: number): string {
  validateIdentifier("namespace", ref.namespace);
  validateIdentifier("deployment name", ref.name);
  return `${refKey(ref)}.population.${chunk}`;
}

/** Key filter for every chunk of `ref`'s population. */
export function populationKeys(ref: DeploymentRef): string {
  return `${refKey(ref)}.population.*`;
}

/** `devices` cut into chunks of at most {@link POPULATION_CHUNK_BYTES} of JSON each. */
export function chunkPopulation(
  revision: number,
  devices: readonly RolloutDevice[],
): PopulationChunk[] {
  const lists: [string, Record<string, string>][][] = [[]];
  let bytes = 0;
  for (const device of devices) {
    const entry: [string, Record<string, string>] = [device.id, { ...device.labels }];
    const size = JSON.stringify(entry).length + 1;
    if (bytes + size > POPULATION_CHUNK_BYTES && lists.at(-1)!.length > 0) {
      lists.push([]);
      bytes = 0;
    }
    lists.at(-1)!.push(entry);
    bytes += size;
  }
  return lists.map((list, chunk) => ({ revision, chunk, chunks: lists.length, devices: list }));
}

/**
 * The population the chunks make, or undefined when they do not make one whole population
 * of a single revision (a write cut short, or chunks of two rollouts).
 */
export function joinPopulation(
  chunks: readonly PopulationChunk[],
): { revision: number; devices: RolloutDevice[] } | undefined {
  const first = chunks[0];
  if (first === undefined) return undefined;
  const sorted = [...chunks].sort((a, b) => a.chunk - b.chunk);
  const whole = sorted.length === first.chunks &&
    sorted.every((c, i) =>
      c.chunk === i && c.revision === first.revision && c.chunks === first.chunks
    );
  if (!whole) return undefined;
  return {
    revision: first.revision,
    devices: sorted.flatMap((c) => c.devices.map(([id, labels]) => ({ id, labels }))),
  };
}
