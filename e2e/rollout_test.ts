/**
 * Progressive rollout on real parts (issue 15): nats-server, podman, the operator and agents.
 * A good update goes canary → 50 % → rest, each batch baking before the next; a bad image tag
 * and a container whose healthcheck fails each fail the canary, and the rollout rolls itself
 * back: the canary runs the previous containers again, the other devices were never touched.
 */
import assert from "node:assert/strict";
import {
  ContainerLabels,
  Deployment,
  type DeploymentStatus,
  type RolloutStatus,
} from "../core/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import type { LocalFleet } from "../sandbox/local_fleet.ts";
import { containerIds, startFleet, waitForStatus, webDeployment } from "./_helpers.ts";
import { story, testLogger } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };
const DEVICES = ["lab-1", "lab-2", "lab-3", "lab-4"];

/** `web` at `tag`, rolled out canary (1) → 50 % → rest, each batch baking `bake`. */
function progressive(tag: string, extra: { healthcheck?: string[]; bake?: string } = {}) {
  const d = webDeployment({ name: "web", tag, selector: LAB });
  const service = d.spec.score.data.services[0]!;
  return Deployment.parse({
    ...d,
    spec: {
      ...d.spec,
      score: {
        ...d.spec.score,
        data: {
          services: [{
            ...service,
            ...(extra.healthcheck
              ? { healthcheck: { command: extra.healthcheck, interval: "1s", retries: 2 } }
              : {}),
          }],
        },
      },
      minReadySeconds: 1,
      rollout: {
        strategy: "Progressive",
        batches: [{ limit: 1 }, { limit: "50%" }],
        bake: extra.bake ?? "2s",
        deviceTimeout: "2m",
      },
    },
  });
}

/** The web container's image tag on each device. */
async function tags(fleet: LocalFleet): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const c of await fleet.containers()) {
    out.set(c.labels[ContainerLabels.deviceId] ?? "?", c.image.split(":").at(-1) ?? "?");
  }
  return out;
}

async function rolloutOf(fleet: LocalFleet): Promise<RolloutStatus | undefined> {
  const store = await fleet.store();
  const row = (await store.deployments()).find((r) => r.deployment.metadata.name === "web");
  return (row?.status as DeploymentStatus | undefined)?.rollout;
}

/** Waits for the rollout of `revision` to reach `phase`, logging each step it goes through. */
async function waitForPhase(
  fleet: LocalFleet,
  revision: number,
  phase: RolloutStatus["phase"],
  timeline: string[],
  timeoutMs = 120_000,
): Promise<RolloutStatus> {
  const start = Date.now();
  let last = "";
  return await waitFor(
    `rollout of revision ${revision} ${phase}`,
    async () => {
      const rollout = await rolloutOf(fleet);
      if (rollout?.revision.number !== revision) return undefined;
      const step = `${rollout.phase} batch ${rollout.currentBatch}: ${rollout.message}`;
      if (step !== last) {
        timeline.push(`+${((Date.now() - start) / 1000).toFixed(1)}s ${step}`);
        last = step;
      }
      return rollout.phase === phase ? rollout : undefined;
    },
    timeoutMs,
    100,
  );
}

story(
  "progressive rollout: a good update goes canary → 50 % → rest with bake; a bad image and a failing healthcheck roll back by themselves",
  { deadlineMs: 10 * 60_000 },
  async () => {
    const log = testLogger();
    await using fleet = await startFleet();
    await fleet.startOperator();
    for (const id of DEVICES) await fleet.startAgent({ deviceId: id, labels: { site: "lab" } });
    const store = await fleet.store();

    // Revision 1 reaches every device (nothing ran before: the canary first, like any rollout).
    await store.apply(progressive("v1", { bake: "0s" }));
    const first: string[] = [];
    await waitForPhase(fleet, 1, "Complete", first);
    await waitForStatus(fleet, { name: "web" }, { matched: 4, succeeded: 4 });

    // Revision 2: canary, then half, then the rest, each after the one before baked 2 s.
    await store.apply(progressive("v2"));
    const good: string[] = [];
    const seen: number[] = [];
    const done = await waitFor(
      "revision 2 Complete",
      async () => {
        const rollout = await rolloutOf(fleet);
        if (rollout?.revision.number !== 2) return undefined;
        const onV2 = [...(await tags(fleet)).values()].filter((t) => t === "v2").length;
        if (seen.at(-1) !== onV2) {
          seen.push(onV2);
          good.push(`batch ${rollout.currentBatch} ${rollout.phase}: ${onV2} on v2`);
        }
        return rollout.phase === "Complete" ? rollout : undefined;
      },
      180_000,
      100,
    );
    log.info(`good update: ${good.join(" | ")}`);
    // Devices on v2 only grow, batch by batch: 1 (the canary), then 2 (50 %), then all 4.
    assert.deepEqual([...seen].sort(), seen, good.join(" | "));
    assert.ok(seen.indexOf(1) >= 0 && seen.indexOf(1) < seen.indexOf(2), good.join(" | "));
    assert.ok(seen.indexOf(2) < seen.indexOf(4), good.join(" | "));
    const [canary, half, rest] = done.batches;
    assert.deepEqual([canary!.selected, half!.selected, rest!.selected], [1, 1, 2]);
    for (const [before, after] of [[canary!, half!], [half!, rest!]] as const) {
      // The next batch starts only once the one before baked its 2 s.
      assert.ok(
        Date.parse(after.startedAt!) - Date.parse(before.bakeStartedAt!) >= 2_000,
        JSON.stringify(done.batches),
      );
    }
    assert.deepEqual([...(await tags(fleet)).values()], ["v2", "v2", "v2", "v2"]);
    const stableIds = await containerIds(fleet);

    // Revision 3 has an image no registry serves: its canary fails and goes back to v2.
    await store.apply(progressive("does-not-exist"));
    const bad: string[] = [];
    const rolledBack = await waitForPhase(fleet, 3, "RolledBack", bad);
    log.info(`bad image timeline:\n${bad.join("\n")}`);
    assert.equal(rolledBack.failure?.batch, 1);
    assert.equal(rolledBack.stable?.number, 2);
    const after = await waitFor("every device on v2 again", async () => {
      const t = await tags(fleet);
      return t.size === 4 && [...t.values()].every((v) => v === "v2") ? t : undefined;
    });
    assert.equal(after.size, 4);
    // The three devices the canary protected kept their very containers.
    const ids = await containerIds(fleet);
    const kept = [...stableIds].filter(([name, id]) => ids.get(name) === id);
    assert.ok(kept.length >= 3, `untouched: ${kept.map(([n]) => n).join(", ")}`);

    // Revision 4 runs, but its healthcheck fails: the canary fails, the rollout rolls back.
    await store.apply(progressive("v1", { healthcheck: ["false"] }));
    const sick: string[] = [];
    const back = await waitForPhase(fleet, 4, "RolledBack", sick);
    log.info(`failing healthcheck timeline:\n${sick.join("\n")}`);
    assert.match(back.failure?.message ?? "", /health/i);
    await waitFor("every device on v2 again", async () => {
      const t = await tags(fleet);
      return t.size === 4 && [...t.values()].every((v) => v === "v2") || undefined;
    });
  },
);
