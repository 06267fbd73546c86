import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  API_VERSION,
  Buckets,
  Deployment,
  type DeploymentStatus,
  keys,
  principalOf,
  ROLLOUT_ACTIONS_STREAM,
} from "../core/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import { NatsRolloutTarget } from "../cli/rollout_target.ts";
import { waitForAction } from "../cli/rollout_wait.ts";
import { NatsBucketKeeper } from "./nats_bucket_keeper.ts";
import { silentLogger } from "../adapters/logger.ts";
import {
  ensureRolloutActionsStream,
  openBucket,
  publishRolloutAction,
} from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startCalloutFixture } from "../testing/callout.ts";
import { eventually } from "../testing/eventually.ts";
import { withDeadline } from "../adapters/timers.ts";
import { captureLogger, Collector, testConnection } from "../testing/nats.ts";
import { NatsRolloutActions } from "./nats_rollout_actions.ts";
import type { RolloutActionEvent } from "./rollout_action_feed.ts";

const WEB = { namespace: "default", name: "web" };

/** An event without its broker time, for comparing. */
function shown(event: RolloutActionEvent | { ready: true }): string {
  if ("ready" in event) return "ready";
  const { seq, ref, action } = event;
  return `${seq} ${ref.namespace}/${ref.name} ${action.verb}${
    action.batch === undefined ? "" : ` ${action.batch}`
  } by ${action.by}`;
}

/** Follows `feed` until the test ends; `stop()` ends it. */
function follow(feed: NatsRolloutActions) {
  const controller = new AbortController();
  const events = new Collector(feed.follow(controller.signal));
  return {
    events,
    shown: () => events.items.map(shown),
    async stop() {
      controller.abort();
      await events.done;
      assert.equal(events.error, undefined);
    },
  };
}

Deno.test("NatsRolloutActions reads every kept action oldest first, says ready, then follows; what is not an action is logged and skipped", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  await ensureRolloutActionsStream(nc, 1);
  const js = jetstream(nc);
  assert.equal(await publishRolloutAction(nc, WEB, "alice", { verb: "pause" }), 1);
  await js.publish(`${ROLLOUT_ACTIONS_STREAM}.default.web.bob`, "{not json");
  await js.publish(`${ROLLOUT_ACTIONS_STREAM}.default.web`, JSON.stringify({ verb: "pause" }));
  await js.publish(`${ROLLOUT_ACTIONS_STREAM}.Shop.web.bob`, JSON.stringify({ verb: "pause" }));
  await js.publish(`${ROLLOUT_ACTIONS_STREAM}.default.web.bob`, JSON.stringify({ verb: "undo" }));
  // The last kept message is not an action: ready comes all the same.
  assert.equal(
    await publishRolloutAction(nc, WEB, "bob", { verb: "approve", batch: 2 }),
    6,
  );
  await js.publish(`${ROLLOUT_ACTIONS_STREAM}.default.web.carol`, JSON.stringify({ verb: "no" }));

  const { logger, lines } = captureLogger();
  const feed = follow(new NatsRolloutActions({ nc, log: logger, replicas: 1 }));
  await eventually("the kept actions", () => feed.shown().includes("ready"));
  assert.deepEqual(feed.shown(), [
    "1 default/web pause by alice",
    "6 default/web approve 2 by bob",
    "ready",
  ]);
  assert.equal(
    lines.filter((l) => l.includes("Ignoring rollout action")).length,
    5,
    lines.join("\n"),
  );
  assert.ok(lines.some((l) => l.includes("action 2") && l.includes("not valid JSON")));
  assert.ok(lines.some((l) => l.includes("action 3") && l.includes("not an action's")));
  assert.ok(lines.some((l) => l.includes("action 4") && l.includes('"Shop"')));

  const before = Date.now();
  await publishRolloutAction(nc, { namespace: "shop", name: "api" }, "carol", { verb: "resume" });
  await eventually("the new action", () => feed.events.items.length === 4);
  assert.equal(feed.shown()[3], "8 shop/api resume by carol");
  const last = feed.events.items[3] as RolloutActionEvent;
  assert.ok(Math.abs(last.at - before) < 60_000, `the broker's time, got ${last.at}`);
  await feed.stop();
});

Deno.test("NatsRolloutActions creates the stream and says ready at once when it holds nothing", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const feed = follow(new NatsRolloutActions({ nc, log: silentLogger, replicas: 1 }));
  await eventually("ready", () => feed.shown().length === 1);
  assert.deepEqual(feed.shown(), ["ready"]);
  await publishRolloutAction(nc, WEB, "alice", { verb: "retry" });
  await eventually("the action", () => feed.shown().length === 2);
  assert.deepEqual(feed.shown(), ["ready", "1 default/web retry by alice"]);
  await feed.stop();
});

Deno.test("NatsRolloutActions ends when its signal aborts before or while it starts reading", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const feed = new NatsRolloutActions({ nc, log: silentLogger, replicas: 1 });
  // An operator stopped during its start: aborts 0-8 ms in land at each step of setting up.
  for (let steps = 0; steps <= 8; steps++) {
    const controller = new AbortController();
    const events: string[] = [];
    const read = (async () => {
      for await (const event of feed.follow(controller.signal)) events.push(shown(event));
    })();
    await new Promise((resolve) => setTimeout(resolve, steps));
    controller.abort();
    await withDeadline(read, 10_000, `follow() still reading 10 s after an abort at ${steps} ms`);
    assert.ok(events.every((e) => e === "ready"), events.join(", "));
  }
});

const ISSUER = "https://idp.test/realms/fleet";

/** Whether `nc` may store an action on `web`. */
async function mayAct(nc: NatsConnection, principal: string): Promise<string> {
  try {
    await publishRolloutAction(nc, WEB, principal, { verb: "pause" });
    return "stored";
  } catch (error) {
    return (error as Error).message;
  }
}

Deno.test("Rollout actions through the callout: a maintainer acts in its own name only, a viewer not at all, the operator keeps and reads the stream, a viewer sees it taken", async () => {
  await using t = await startCalloutFixture(false);
  const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
  const viewer = await t.connectAs(await t.mint("bob", ["fleet-viewer"]));
  const maintainer = await t.connectAs(await t.mint("mia", ["fleet-maintainer"]));
  const admin = await t.connectAs(await t.mint("ada", ["fleet-admin"]));
  const bob = principalOf(ISSUER, "bob");
  const mia = principalOf(ISSUER, "mia");
  const ada = principalOf(ISSUER, "ada");
  try {
    const feed = follow(new NatsRolloutActions({ nc: operator, log: silentLogger, replicas: 1 }));
    await eventually("the operator's feed ready", () => feed.shown().includes("ready"));

    assert.match(await mayAct(viewer, bob), /your role does not allow rollout actions/);
    assert.equal(await mayAct(maintainer, mia), "stored");
    assert.match(await mayAct(maintainer, bob), /your role does not allow rollout actions/);
    assert.equal(await mayAct(admin, ada), "stored");
    assert.match(await mayAct(operator, principalOf(ISSUER, "fleet-operator")), /does not allow/);

    await eventually("the stored actions", () => feed.shown().length === 3);
    assert.deepEqual(feed.shown(), [
      "ready",
      `1 default/web pause by ${mia}`,
      `2 default/web pause by ${ada}`,
    ]);
    await feed.stop();

    // The CLI's wait, with a viewer's rights: it reads the deployment and watches its status
    // until the operator writes that it took the action.
    const keeper = new NatsBucketKeeper({
      nc: operator,
      log: silentLogger,
      replicas: 1,
      clock: systemClock,
    });
    assert.ok(await keeper.ensureAll(new AbortController().signal));
    await (await openBucket(admin, Buckets.deployments)).put(
      keys.deployment(WEB),
      JSON.stringify(Deployment.parse({
        apiVersion: API_VERSION,
        kind: "Deployment",
        metadata: { name: "web", namespace: "default", generation: 1 },
        spec: {
          targetSelector: { matchLabels: { site: "lab" } },
          score: { type: "PodmanV0", data: { services: [{ name: "web", image: "web:1" }] } },
        },
      })),
    );
    const target = new NatsRolloutTarget(viewer, silentLogger);
    assert.equal((await target.read(WEB))?.rollout, undefined);
    const waiting = waitForAction(target, { ref: WEB, verb: "pause", seq: 2 }, {
      timeoutMs: 15_000,
      clock: systemClock,
    });
    const status: DeploymentStatus = {
      namespace: "default",
      name: "web",
      observedGeneration: 1,
      aggregate: {
        matchedDeviceCount: 0,
        succeeded: 0,
        failed: 0,
        pending: 0,
        unreachable: 0,
        lastError: null,
      },
      rollout: {
        phase: "Paused",
        revision: { number: 1, hash: "1111111111111111" },
        stable: null,
        currentBatch: 1,
        batches: [],
        population: 0,
        joined: 0,
        startedAt: "2026-12-06T08:00:00Z",
        message: "paused",
        conditions: [],
        lastAction: { seq: 2, verb: "pause", by: ada, at: "2026-12-06T08:00:01Z" },
      },
      updatedAt: "2026-12-06T08:00:01Z",
    };
    await (await openBucket(operator, Buckets.deploymentStatus)).put(
      keys.deployment(WEB),
      JSON.stringify(status),
    );
    assert.equal((await waiting).lastAction?.by, ada);
  } finally {
    for (const nc of [operator, viewer, maintainer, admin]) await nc.close();
  }
});
