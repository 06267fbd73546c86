/**
 * `fleet rollout status|pause|resume|approve|retry|undo` as users run them (the real program,
 * spawned) against a real nats-server, the test playing the operator's part: it keeps the
 * buckets and the actions stream, reads the actions the CLI stores, and writes the status
 * that says it took them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  API_VERSION,
  Buckets,
  Deployment,
  type DeploymentStatus,
  keys,
  type Revision,
  type RolloutStatus,
} from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { openBucket } from "../adapters/nats/mod.ts";
import { NatsBucketKeeper } from "../operator/nats_bucket_keeper.ts";
import { NatsRolloutActions } from "../operator/nats_rollout_actions.ts";
import type { RolloutActionEvent } from "../operator/rollout_action_feed.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { eventually } from "../testing/eventually.ts";
import { Collector, testConnection } from "../testing/nats.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const ROOT = join(MAIN, "..");

/** Runs `fleet <args>`, with no FLEET_* variable from this process. */
async function fleet(...args: string[]) {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  const run = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  return { ...run, shown: `exit ${run.code}\n${run.stdout}---\n${run.stderr}` };
}

const score = (tag: string) => ({
  type: "PodmanV0" as const,
  data: { services: [{ name: "web", image: `localhost/web:${tag}` }] },
});

/** A deployment as `fleet apply` stores it, with the schema's defaults. */
function deployment(name: string, rollout: unknown): Deployment {
  return Deployment.parse({
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, namespace: "default", generation: 1 },
    spec: { targetSelector: { matchLabels: { site: "lab" } }, score: score("2"), rollout },
  });
}

const batch = (selected: number, healthy: number, done: boolean) => ({
  selected,
  updated: healthy,
  healthy,
  failed: 0,
  timedOut: 0,
  offline: 0,
  ...(done
    ? { startedAt: "2026-12-06T08:00:00.000Z", completedAt: "2026-12-06T08:01:00.000Z" }
    : {}),
});

/** Batch 1 done, batch 2 (Manual) waiting for its approval. */
const WAITING: RolloutStatus = {
  phase: "Progressing",
  revision: { number: 2, hash: "2222222222222222" },
  stable: { number: 1, hash: "1111111111111111" },
  currentBatch: 2,
  batches: [batch(1, 1, true), batch(2, 0, false), batch(3, 0, false)],
  population: 6,
  joined: 0,
  startedAt: "2026-12-06T08:00:00.000Z",
  message: "batch 2 of 3 waits for approval before giving 2 devices revision 2: run fleet " +
    "rollout approve",
  conditions: [],
};

function revision(number: number, tag: string): Revision {
  return {
    number,
    hash: `${number}`.repeat(16),
    createdAt: "2026-12-06T07:00:00.000Z",
    generation: number,
    change: number === 1 ? "first revision" : `web: localhost/web:1 → localhost/web:${tag}`,
    score: score(tag),
  };
}

Deno.test("fleet rollout status, the actions and undo on the nats target", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const url = ["--nats-url", ns.url];
  const keeper = new NatsBucketKeeper({ nc, log: silentLogger, replicas: 1, clock: systemClock });
  assert.ok(await keeper.ensureAll(new AbortController().signal));
  const deployments = await openBucket(nc, Buckets.deployments);
  const statuses = await openBucket(nc, Buckets.deploymentStatus);
  const WEB = { namespace: "default", name: "web" };
  const progressive = {
    strategy: "Progressive" as const,
    batches: [{ limit: 1 }, { limit: 2, approval: "Manual" as const }],
  };
  await deployments.put(keys.deployment(WEB), JSON.stringify(deployment("web", progressive)));
  await deployments.put(
    "default.api",
    JSON.stringify(deployment("api", { strategy: "Immediate" })),
  );
  const writeStatus = (rollout: RolloutStatus) => {
    const status: DeploymentStatus = {
      namespace: "default",
      name: "web",
      observedGeneration: 1,
      aggregate: {
        matchedDeviceCount: 6,
        succeeded: 1,
        failed: 0,
        pending: 5,
        unreachable: 0,
        lastError: null,
      },
      rollout,
      updatedAt: new Date().toISOString(),
    };
    return statuses.put(keys.deployment(WEB), JSON.stringify(status));
  };
  await writeStatus(WAITING);
  const revisions = await openBucket(nc, Buckets.revisions);
  for (const r of [revision(1, "1"), revision(2, "2")]) {
    await revisions.put(keys.revision(WEB, r.number), JSON.stringify(r));
  }

  // status: the batches, the Manual one waiting; an Immediate deployment; a missing one.
  const status = await fleet("rollout", "status", "web", ...url);
  assert.equal(status.code, 0, status.shown);
  assert.match(status.stdout, /^Phase: {8}Progressing$/m);
  assert.match(status.stdout, /^2 {10}2 .* waiting for approval$/m);
  assert.match(status.stdout, /^Now: batch 2 of 3 waits for approval/m);
  const json = await fleet("rollout", "status", "web", "-o", "json", ...url);
  assert.deepEqual(JSON.parse(json.stdout).rollout, WAITING);
  const api = await fleet("rollout", "status", "api", ...url);
  assert.equal(api.code, 0, api.shown);
  assert.match(api.stdout, /^Deployment default\/api rolls out Immediately/);
  const missing = await fleet("rollout", "status", "nope", ...url);
  assert.equal(missing.code, 1, missing.shown);
  assert.match(missing.stderr, /deployment default\/nope does not exist/);
  const immediate = await fleet("rollout", "pause", "api", ...url);
  assert.equal(immediate.code, 1, immediate.shown);
  assert.match(immediate.stderr, /deployment default\/api has no progressive rollout to pause/);

  // approve: stored in the person's name; done once the status shows its sequence.
  const controller = new AbortController();
  const feed = new Collector(
    new NatsRolloutActions({ nc, log: silentLogger, replicas: 1 }).follow(controller.signal),
  );
  const actions = () => feed.items.filter((e): e is RolloutActionEvent => !("ready" in e));
  const approving = fleet("rollout", "approve", "web", "--batch", "2", "--timeout", "60", ...url);
  const approve = await eventually("the approval", () => actions()[0]);
  assert.deepEqual(approve.action, { verb: "approve", by: "anonymous", batch: 2 });
  await writeStatus({
    ...WAITING,
    message: "batch 2 of 3 started: 2 devices get revision 2",
    lastAction: { seq: approve.seq, verb: "approve", by: "anonymous", at: "2026-12-06T08:02:00Z" },
  });
  const approved = await approving;
  assert.equal(approved.code, 0, approved.shown);
  assert.equal(
    approved.stdout,
    "approve of deployment default/web done: Progressing — batch 2 of 3 started: 2 devices " +
      "get revision 2\n",
  );

  // resume of a rollout that is not paused: refused, with the operator's reason.
  const resuming = fleet("rollout", "resume", "web", "--timeout", "60", ...url);
  const resume = await eventually("the resume", () => actions()[1]);
  await writeStatus({
    ...WAITING,
    lastAction: {
      seq: resume.seq,
      verb: "resume",
      by: "anonymous",
      at: "2026-12-06T08:03:00Z",
      refused: "the rollout is not paused",
    },
  });
  const resumed = await resuming;
  assert.equal(resumed.code, 1, resumed.shown);
  assert.match(
    resumed.stderr,
    /resume of deployment default\/web refused: the rollout is not paused/,
  );

  // No operator taking it: the wait ends, the action stays stored.
  const late = await fleet("rollout", "pause", "web", "--timeout", "1", ...url);
  assert.equal(late.code, 1, late.shown);
  assert.match(late.stderr, /the operator has not taken the pause of deployment default\/web/);
  assert.match(late.stderr, /is it running\?/);
  await eventually("the kept pause", () => actions()[2]?.action.verb === "pause");
  controller.abort();
  await feed.done;

  const history = await fleet("rollout", "history", "web", ...url);
  assert.equal(history.code, 0, history.shown);
  assert.match(history.stdout, /^2 \(current\) .* web: localhost\/web:1 → localhost\/web:2$/m);

  // undo: a revision not kept is a usage error; by default the one before the newest.
  const unknown = await fleet("rollout", "undo", "web", "--to-revision", "9", ...url);
  assert.equal(unknown.code, 2, unknown.shown);
  assert.match(unknown.stderr, /revision 9 is not kept \(kept: 1, 2\)/);
  const undo = await fleet("rollout", "undo", "web", ...url);
  assert.equal(undo.code, 0, undo.shown);
  assert.match(
    undo.stdout,
    /^deployment default\/web rolled back to the workload of revision 1 \(first revision\): generation 2, which the operator records as revision 3\n$/,
  );
  const stored = JSON.parse((await deployments.get(keys.deployment(WEB)))!.string());
  assert.equal(stored.spec.score.data.services[0].image, "localhost/web:1");
  assert.deepEqual(stored.spec.rollout, progressive, "only the workload changes");

  // --watch ends with the rollout: 0 once Complete, 1 once rolled back.
  await writeStatus({ ...WAITING, phase: "Complete", message: "revision 2 reached every device" });
  const complete = await fleet("rollout", "status", "web", "--watch", ...url);
  assert.equal(complete.code, 0, complete.shown);
  assert.match(complete.stdout, /^Phase: {8}Complete$/m);
  await writeStatus({ ...WAITING, phase: "RolledBack", message: "batch 1 failed; rolled back" });
  const rolledBack = await fleet("rollout", "status", "web", "--watch", ...url);
  assert.equal(rolledBack.code, 1, rolledBack.shown);
  assert.match(rolledBack.stdout, /^Now: batch 1 failed; rolled back$/m);
});
