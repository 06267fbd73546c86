import assert from "node:assert/strict";
import {
  chunkPopulation,
  joinPopulation,
  POPULATION_CHUNK_BYTES,
  populationKey,
} from "./rollout_population.ts";

const ref = { namespace: "shop", name: "web" };

function devices(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: `device-${String(i).padStart(6, "0")}`,
    labels: { site: `site-${i % 500}`, ring: i % 10 === 0 ? "canary" : "main" },
  }));
}

Deno.test("a population of 100,000 devices is cut into chunks under the value limit and joins back in order", () => {
  const population = devices(100_000);
  const chunks = chunkPopulation(7, population);
  assert(chunks.length > 1);
  for (const chunk of chunks) {
    assert(JSON.stringify(chunk).length < POPULATION_CHUNK_BYTES + 1024);
    assert.equal(chunk.chunks, chunks.length);
  }
  // Chunks come back from the bucket in any order.
  const joined = joinPopulation([...chunks].reverse());
  assert.deepStrictEqual(joined, { revision: 7, devices: population });
});

Deno.test("an empty population is one empty chunk", () => {
  const chunks = chunkPopulation(1, []);
  assert.deepStrictEqual(chunks, [{ revision: 1, chunk: 0, chunks: 1, devices: [] }]);
  assert.deepStrictEqual(joinPopulation(chunks), { revision: 1, devices: [] });
});

Deno.test("chunks that do not make one whole population are no population", () => {
  const chunks = chunkPopulation(3, devices(30_000));
  assert(chunks.length >= 2);
  assert.equal(joinPopulation(chunks.slice(1)), undefined, "a chunk missing");
  const other = chunkPopulation(4, devices(30_000));
  assert.equal(joinPopulation([chunks[0]!, ...other.slice(1)]), undefined, "two revisions");
  assert.equal(joinPopulation([]), undefined);
});

Deno.test("population keys sit beside the revisions of the deployment, not among them", () => {
  assert.equal(populationKey(ref, 3), "shop.web.population.3");
  assert.throws(() => populationKey({ namespace: "Shop", name: "web" }, 0), /namespace/);
});
