import assert from "node:assert/strict";
import { buildDeployment } from "../core/deployment_builder.ts";
import type { StoredDeployment } from "../core/deployment.ts";
import { type DeploymentRef, refKey } from "../core/keys.ts";
import type { Revision } from "../core/revisions.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { eventually } from "../testing/eventually.ts";
import { RevisionRecorder } from "./revision_recorder.ts";
import type { RevisionStore } from "./revision_store.ts";

const REF: DeploymentRef = { namespace: "shop", name: "web" };

function web(image: string, generation: number): StoredDeployment {
  const d = buildDeployment({
    name: REF.name,
    namespace: REF.namespace,
    image,
    ports: [],
    env: [],
    volumes: [],
    selectors: ["site=lab"],
  });
  return { ...d, metadata: { ...d.metadata, generation } };
}

/** Revisions in memory; `failNext` makes the next calls throw, as an unreachable NATS would. */
class MemoryRevisions implements RevisionStore {
  readonly kept = new Map<string, Revision>();
  failNext = 0;
  writes = 0;

  list(ref: DeploymentRef): Promise<Revision[]> {
    this.#maybeFail();
    return Promise.resolve(
      [...this.kept.entries()].filter(([k]) => k.startsWith(`${refKey(ref)}.`))
        .map(([, r]) => r).sort((a, b) => a.number - b.number),
    );
  }
  put(ref: DeploymentRef, revision: Revision): Promise<void> {
    this.#maybeFail();
    this.writes++;
    this.kept.set(`${refKey(ref)}.${revision.number}`, revision);
    return Promise.resolve();
  }
  remove(ref: DeploymentRef, numbers: readonly number[]): Promise<void> {
    this.#maybeFail();
    for (const n of numbers) this.kept.delete(`${refKey(ref)}.${n}`);
    return Promise.resolve();
  }
  numbers(): number[] {
    return [...this.kept.values()].map((r) => r.number).sort((a, b) => a - b);
  }
  #maybeFail(): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("no responders available for request");
    }
  }
}

function recorder(store: MemoryRevisions, clock = new FakeClock(), keep?: number) {
  return new RevisionRecorder({
    store,
    clock,
    log: silentLogger,
    ...(keep === undefined ? {} : { keep }),
  });
}

Deno.test("RevisionRecorder records a revision per workload change, none for a re-apply", async () => {
  const store = new MemoryRevisions();
  const r = recorder(store);
  r.onSource({ type: "upsert", deployment: web("web:1", 1) });
  await eventually("revision 1", () => store.numbers().length === 1);
  r.onSource({ type: "upsert", deployment: web("web:1", 1) });
  r.onSource({ type: "upsert", deployment: web("web:2", 2) });
  await eventually("revision 2", () => store.numbers().length === 2);
  const two = store.kept.get("shop.web.2")!;
  assert.equal(two.generation, 2);
  assert.equal(two.change, "web: web:1 → web:2");
  assert.equal(store.writes, 2, "the re-apply wrote nothing");
});

Deno.test("RevisionRecorder: back to an older workload is a new number; the older entry goes", async () => {
  const store = new MemoryRevisions();
  const r = recorder(store);
  for (const [image, generation] of [["web:1", 1], ["web:2", 2], ["web:1", 3]] as const) {
    r.onSource({ type: "upsert", deployment: web(image, generation) });
    await eventually(
      `generation ${generation}`,
      () => [...store.kept.values()].some((x) => x.generation === generation),
    );
  }
  assert.deepEqual(store.numbers(), [2, 3]);
  assert.equal(store.kept.get("shop.web.3")!.change, "back to the workload of revision 1");
});

Deno.test("RevisionRecorder keeps the newest N and forgets a deleted deployment's", async () => {
  const store = new MemoryRevisions();
  const r = recorder(store, new FakeClock(), 3);
  for (let g = 1; g <= 5; g++) {
    r.onSource({ type: "upsert", deployment: web(`web:${g}`, g) });
    await eventually(`revision ${g}`, () => store.numbers().at(-1) === g);
  }
  assert.deepEqual(store.numbers(), [3, 4, 5]);
  r.onSource({ type: "delete", ref: REF });
  await eventually("no revision left", () => store.kept.size === 0);
});

Deno.test("RevisionRecorder retries a failed write with backoff, then writes the newest wish", async () => {
  const store = new MemoryRevisions();
  const clock = new FakeClock();
  const r = recorder(store, clock);
  store.failNext = 2;
  r.onSource({ type: "upsert", deployment: web("web:1", 1) });
  // While the retry waits, a newer spec arrives: it is the one written.
  r.onSource({ type: "upsert", deployment: web("web:2", 2) });
  assert.equal(store.kept.size, 0);
  for (let i = 0; i < 5 && store.kept.size === 0; i++) {
    await clock.advance(30_000);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await eventually("a revision after the retries", () => store.kept.size === 1);
  assert.equal(store.kept.get("shop.web.1")!.generation, 2, "the newest spec, as revision 1");
  r.stop();
});
