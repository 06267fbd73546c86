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
import { KubeClient } from "../adapters/kube/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { DeploymentType, installCrds } from "../operator/mod.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import type { Condition } from "../crd/device_resource.ts";
import type { LocalFleet } from "../sandbox/local_fleet.ts";
import {
  containerIds,
  fleet as run,
  startFleet,
  waitForStatus,
  webDeployment,
} from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };
const DEVICES = ["lab-1", "lab-2", "lab-3", "lab-4"];

/** `web` at `tag`, rolled out canary (1) → 50 % → rest, each batch baking `bake`. */
function progressive(
  tag: string,
  extra: {
    healthcheck?: string[];
    bake?: string;
    approval?: "Manual";
    onFailure?: "Pause";
  } = {},
) {
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
        batches: [{ limit: 1 }, {
          limit: "50%",
          ...(extra.approval ? { approval: "Manual" } : {}),
        }],
        bake: extra.bake ?? "2s",
        deviceTimeout: "2m",
        ...(extra.onFailure ? { onFailure: extra.onFailure } : {}),
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

/** Waits until each of `count` devices runs `web` at `tag`. */
async function waitForAll(fleet: LocalFleet, tag: string, count: number): Promise<void> {
  await waitFor(`${count} devices on ${tag}`, async () => {
    const t = [...(await tags(fleet)).values()];
    return t.length === count && t.every((v) => v === tag) || undefined;
  }, 120_000);
}

/** A fleet of four lab devices running their agents, its operator on the nats source. */
async function labFleet(): Promise<LocalFleet> {
  await using stack = new AsyncDisposableStack();
  const fleet = stack.use(await startFleet());
  await fleet.startOperator();
  for (const id of DEVICES) await fleet.startAgent({ deviceId: id, labels: { site: "lab" } });
  stack.move();
  return fleet;
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
    await using fleet = await labFleet();
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
    await waitForAll(fleet, "v2", 4);
    // Every device kept its very container: the canary's own too, as the image never came.
    assert.deepEqual(await containerIds(fleet), stableIds);

    // Revision 4 runs, but its healthcheck fails: the canary fails, the rollout rolls back.
    await store.apply(progressive("v1", { healthcheck: ["false"] }));
    const sick: string[] = [];
    const back = await waitForPhase(fleet, 4, "RolledBack", sick);
    log.info(`failing healthcheck timeline:\n${sick.join("\n")}`);
    assert.match(back.failure?.message ?? "", /health/i);
    await waitForAll(fleet, "v2", 4);
  },
);

story(
  "progressive rollout from the CLI: approve a Manual batch, pause and resume, retry a failed batch, undo; an operator stopped mid-rollout resumes the same batches",
  { deadlineMs: 10 * 60_000 },
  async () => {
    const log = testLogger();
    await using fleet = await labFleet();
    const store = await fleet.store();
    const cli = async (...args: string[]) => {
      const result = await run(["rollout", ...args, "web", "--nats-url", fleet.natsUrls.join(",")]);
      log.info(
        `$ fleet rollout ${
          args.join(" ")
        } web → exit ${result.code}\n${result.stdout}${result.stderr}`,
      );
      return result;
    };
    await store.apply(webDeployment({ name: "web", tag: "v1", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { matched: 4, succeeded: 4 });

    // Revision 2: the canary goes, the 50 % batch waits for a person's approval.
    await store.apply(progressive("v2", { bake: "0s", approval: "Manual", onFailure: "Pause" }));
    const waiting = await waitFor("batch 2 waiting for approval", async () => {
      const rollout = await rolloutOf(fleet);
      return rollout?.revision.number === 2 && rollout.currentBatch === 2 &&
          /approv/.test(rollout.message)
        ? rollout
        : undefined;
    }, 120_000);
    const canary = [...await tags(fleet)].filter(([, t]) => t === "v2").map(([id]) => id);
    assert.equal(canary.length, 1);
    const shown = await cli("status");
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /approv/);

    // The operator stops and comes back: the same rollout, the same canary, still waiting.
    await fleet.stopOperator();
    await fleet.startOperator();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const resumed = await rolloutOf(fleet);
    assert.equal(resumed?.startedAt, waiting.startedAt);
    assert.equal(resumed?.batches[0]?.startedAt, waiting.batches[0]?.startedAt);
    assert.equal(resumed?.currentBatch, 2);
    assert.deepEqual(
      [...await tags(fleet)].filter(([, t]) => t === "v2").map(([id]) => id),
      canary,
    );

    // Pause, resume, approve: each taken by the operator in the person's name.
    const paused = await cli("pause");
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal((await rolloutOf(fleet))?.phase, "Paused");
    assert.equal((await rolloutOf(fleet))?.pausedBy, "anonymous");
    const again = await cli("pause");
    assert.equal(again.code, 1, "pausing a paused rollout is refused");
    assert.match(again.stderr, /already paused/);
    assert.equal((await cli("resume")).code, 0);
    const approved = await cli("approve");
    assert.equal(approved.code, 0, approved.stderr);
    await waitForPhase(fleet, 2, "Complete", []);
    await waitForAll(fleet, "v2", 4);

    // Revision 3 fails its canary; onFailure Pause leaves it Degraded for a person.
    await store.apply(progressive("does-not-exist", { bake: "0s", onFailure: "Pause" }));
    const degraded = await waitForPhase(fleet, 3, "Degraded", []);
    assert.equal(degraded.failure?.batch, 1);
    const retried = await cli("retry");
    assert.equal(retried.code, 0, retried.stderr);
    // The canary runs it again (its agent pulls again) and fails again: Degraded anew.
    const failedAgain = await waitFor("the retried canary failed again", async () => {
      const rollout = await rolloutOf(fleet);
      const retriedAt = rollout?.batches[0]?.retriedAt;
      return rollout?.phase === "Degraded" && retriedAt !== undefined &&
          rollout.failure !== undefined && rollout.failure.at >= retriedAt
        ? rollout
        : undefined;
    }, 120_000);
    assert.equal(failedAgain.lastAction?.verb, "retry");
    const protectedIds = await containerIds(fleet);

    // Undo: the workload of revision 2 again, as a new revision, without the user's file.
    const undone = await cli("undo");
    assert.equal(undone.code, 0, undone.stderr);
    const back = await waitFor("the undo's revision Complete", async () => {
      const rollout = await rolloutOf(fleet);
      return rollout !== undefined && rollout.revision.number > 3 && rollout.phase === "Complete"
        ? rollout
        : undefined;
    }, 120_000);
    assert.equal(back.revision.number, 4);
    await waitForAll(fleet, "v2", 4);
    // The devices the canary protected were never touched by the failure, the retry or the undo.
    const ids = await containerIds(fleet);
    const untouched = [...protectedIds].filter(([name, id]) => ids.get(name) === id);
    assert.ok(untouched.length >= 3, `untouched: ${untouched.map(([n]) => n).join(", ")}`);
    const final = await cli("status");
    assert.match(final.stdout, /Complete/);
  },
);

interface DeploymentCr {
  status?: { rollout?: RolloutStatus; conditions?: Condition[] };
}

story(
  "progressive rollout on the kube source: status.rollout, conditions and printer columns on the Deployment; a bad image rolls back by itself; fleet rollout status --target kube",
  { deadlineMs: 10 * 60_000 },
  async () => {
    const log = testLogger();
    await using kube = stopOnDeadline(await startKubeApiServer());
    using client = new KubeClient(kube.adminConfig);
    await installCrds(client, log);
    await using fleet = await startFleet();
    await fleet.startOperator({ kube: client });
    const ids = ["lab-1", "lab-2", "lab-3"];
    for (const id of ids) await fleet.startAgent({ deviceId: id, labels: { site: "lab" } });
    const store = new KubeDeploymentStore(client, log);
    const cr = async () =>
      (await client.get<DeploymentCr>(DeploymentType, "web", "default"))?.status;
    const condition = (status: DeploymentCr["status"], type: string) =>
      status?.conditions?.find((c) => c.type === type)?.status;

    await store.apply(webDeployment({ name: "web", tag: "v1", selector: LAB }));
    await waitForAll(fleet, "v1", 3);

    await store.apply(progressive("v2", { bake: "1s" }));
    const complete = await waitFor("revision 2 Complete on the Deployment", async () => {
      const status = await cr();
      return status?.rollout?.revision.number === 2 && status.rollout.phase === "Complete"
        ? status
        : undefined;
    }, 180_000);
    assert.equal(condition(complete, "Complete"), "True");
    assert.equal(condition(complete, "Progressing"), "False");
    assert.deepEqual(complete.rollout?.batches.map((b) => b.selected), [1, 1, 1]);
    assert.deepEqual([...(await tags(fleet)).values()], ["v2", "v2", "v2"]);
    const stableIds = await containerIds(fleet);

    await store.apply(progressive("does-not-exist"));
    const rolledBack = await waitFor("revision 3 RolledBack on the Deployment", async () => {
      const status = await cr();
      return status?.rollout?.revision.number === 3 && status.rollout.phase === "RolledBack"
        ? status
        : undefined;
    }, 180_000);
    assert.equal(condition(rolledBack, "Degraded"), "True");
    assert.equal(condition(rolledBack, "Complete"), "False");
    assert.equal(rolledBack.rollout?.stable?.number, 2);
    await waitForAll(fleet, "v2", 3);
    const ids2 = await containerIds(fleet);
    const kept = [...stableIds].filter(([name, id]) => ids2.get(name) === id);
    assert.ok(kept.length >= 2, `untouched: ${kept.map(([n]) => n).join(", ")}`);

    const shown = await run([
      "rollout",
      "status",
      "web",
      "--target",
      "kube",
      "--kubeconfig",
      kube.kubeconfigPath,
      "--nats-url",
      fleet.natsUrls.join(","),
    ]);
    log.info(`$ fleet rollout status web --target kube\n${shown.stdout}${shown.stderr}`);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /RolledBack/);
    assert.match(shown.stdout, /BATCH +SELECTED +UPDATED +HEALTHY +FAILED +TIMED OUT +OFFLINE/);
    const rows = await run([
      "get",
      "deployments",
      "--target",
      "kube",
      "--kubeconfig",
      kube.kubeconfigPath,
    ]);
    assert.equal(rows.code, 0, rows.stderr);
    assert.match(rows.stdout, /ROLLOUT/);
    assert.match(rows.stdout, /rev 3 RolledBack/);
  },
);
