/**
 * The kube target of `fleet rollout`: a Deployment object and its status.rollout as a real
 * kube-apiserver with Fleet's CRDs stores them, read and watched.
 */
import assert from "node:assert/strict";
import { KubeClient } from "../adapters/kube/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { API_VERSION, type RolloutStatus } from "../core/mod.ts";
import { installCrds } from "../operator/kube_install.ts";
import { DeploymentType } from "../operator/kube_resources.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { eventually } from "../testing/eventually.ts";
import {
  createNamespace,
  disposeSharedKube,
  sharedKube,
  sharedServerTest,
} from "../testing/kube.ts";
import { Collector } from "../testing/nats.ts";
import { KubeRolloutTarget, type RolloutSnapshot } from "./rollout_target.ts";
import { waitForAction } from "./rollout_wait.ts";

const ROLLOUT: RolloutStatus = {
  phase: "Progressing",
  revision: { number: 2, hash: "2222222222222222" },
  stable: { number: 1, hash: "1111111111111111" },
  currentBatch: 1,
  batches: [
    {
      selected: 1,
      updated: 1,
      healthy: 0,
      failed: 0,
      timedOut: 0,
      offline: 0,
      startedAt: "2026-12-06T08:00:00Z",
    },
    { selected: 3, updated: 0, healthy: 0, failed: 0, timedOut: 0, offline: 0 },
  ],
  population: 4,
  joined: 0,
  startedAt: "2026-12-06T08:00:00Z",
  message: "batch 1 of 2: waiting for 1 more of 1 device to be healthy",
  conditions: [],
};

Deno.test({
  name: "KubeRolloutTarget reads a Deployment's spec and status.rollout, and sees an action taken",
  ...sharedServerTest,
  async fn() {
    const client = new KubeClient((await sharedKube()).adminConfig);
    try {
      await installCrds(client, silentLogger);
      const namespace = await createNamespace(client, "rollout");
      const ref = { namespace, name: "web" };
      const clock = new FakeClock();
      const target = new KubeRolloutTarget(client, silentLogger, clock);
      assert.equal(await target.read(ref), undefined);

      await client.apply(DeploymentType, {
        apiVersion: API_VERSION,
        kind: "Deployment",
        metadata: { name: "web", namespace, labels: { team: "shop" } },
        spec: {
          targetSelector: { matchLabels: { site: "lab" } },
          score: {
            type: "PodmanV0",
            data: { services: [{ name: "web", image: "localhost/web:2" }] },
          },
          rollout: { strategy: "Progressive", batches: [{ limit: 1 }] },
        },
      }, { fieldManager: "test" });
      const before = await target.read(ref);
      assert.equal(before?.rollout, undefined);
      assert.deepEqual(before?.metadata, { name: "web", namespace, labels: { team: "shop" } });
      assert.equal(before?.spec?.rollout.strategy, "Progressive");

      const writeStatus = (rollout: RolloutStatus) =>
        client.applyStatus(DeploymentType, {
          apiVersion: API_VERSION,
          kind: "Deployment",
          metadata: { name: "web", namespace },
          status: { rollout },
        }, { fieldManager: "test-operator", force: true });
      await writeStatus(ROLLOUT);
      assert.deepEqual((await target.read(ref))?.rollout, ROLLOUT);

      // Watched: read again every second, shown only when it changed.
      const controller = new AbortController();
      const seen = new Collector<RolloutSnapshot | undefined>(target.watch(ref, controller.signal));
      await eventually("the first snapshot", () => seen.items.length === 1);
      let taken: RolloutStatus | undefined;
      const waiting = waitForAction(target, { ref, verb: "pause", seq: 4 }, {
        timeoutMs: 60_000,
        clock,
      }).then((rollout) => taken = rollout);
      await writeStatus({
        ...ROLLOUT,
        phase: "Paused",
        lastAction: { seq: 4, verb: "pause", by: "mia-1", at: "2026-12-06T08:01:00Z" },
      });
      // A second passes for the polls whenever they wait (a read may still be on its way).
      const tick = async () => {
        await clock.advance(1_000);
        return true;
      };
      await eventually("the action seen taken", async () => await tick() && taken);
      await waiting;
      assert.equal(taken?.phase, "Paused");
      await eventually("the change", async () => await tick() && seen.items.length === 2);
      controller.abort();
      await seen.done;
      assert.deepEqual(seen.items.map((s) => s?.rollout?.phase), ["Progressing", "Paused"]);
    } finally {
      client.close();
      await disposeSharedKube();
    }
  },
});
