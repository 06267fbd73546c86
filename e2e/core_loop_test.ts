/**
 * The core loop on real parts: nats-server, podman, the operator and agents. Each story
 * starts its own fleet and removes everything it created.
 */
import assert from "node:assert/strict";
import { Buckets, ContainerLabels } from "../core/mod.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats, noCredentials, readBucket } from "../adapters/nats/mod.ts";
import { Kvm } from "@nats-io/kv";
import { waitFor } from "../adapters/timers.ts";
import { containerIds, curl, startFleet, waitForStatus, webDeployment } from "./_helpers.ts";
import { story } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };

story(
  "core loop: apply → running → image update recreates → delete removes, aggregate right at every step",
  async () => {
    await using fleet = await startFleet();
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "lab-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "lab-2", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "shop-1", labels: { site: "shop" } });
    const store = await fleet.store();

    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { generation: 1, matched: 2, succeeded: 2 });
    const v1 = await fleet.containers();
    assert.deepEqual(v1.map((c) => c.labels[ContainerLabels.deviceId]).sort(), ["lab-1", "lab-2"]);
    for (const c of v1) assert.equal(await curl(fleet, c.id), "fleet-test v1");

    const unchanged = await store.apply(webDeployment({ name: "web", selector: LAB }));
    assert.equal(unchanged.outcome, "unchanged");

    const updated = await store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" }));
    assert.deepEqual(updated, { outcome: "configured", generation: 2 });
    await waitForStatus(fleet, { name: "web" }, { generation: 2, matched: 2, succeeded: 2 });
    const v2 = await waitFor("two v2 containers", async () => {
      const cs = await fleet.containers();
      return cs.length === 2 && cs.every((c) => c.image.endsWith(":v2")) ? cs : undefined;
    });
    const oldIds = new Set(v1.map((c) => c.id));
    assert.ok(v2.every((c) => !oldIds.has(c.id)), "v2 containers have new ids");
    for (const c of v2) assert.equal(await curl(fleet, c.id), "fleet-test v2");

    assert.equal(await store.delete({ namespace: "default", name: "web" }), true);
    await waitFor(
      "containers gone",
      async () => (await fleet.containers()).length === 0 || undefined,
    );
    await waitFor(
      "status removed",
      async () => (await store.deployments()).length === 0 || undefined,
    );
  },
);

story("agent restart with unchanged desired state recreates nothing", async () => {
  await using fleet = await startFleet();
  await fleet.startOperator();
  await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
  const store = await fleet.store();
  await store.apply(webDeployment({ name: "web", selector: LAB }));
  await store.apply(webDeployment({ name: "api", selector: LAB }));
  await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 });
  await waitForStatus(fleet, { name: "api" }, { matched: 1, succeeded: 1 });
  const before = await containerIds(fleet);

  await fleet.stopAgent("dev-1");
  const agent = await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
  await waitFor("two passes after restart", () => agent.passes >= 2 || undefined);
  assert.deepEqual(await containerIds(fleet), before);
  await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 });
});

story("a container removed by hand comes back within one relist", async () => {
  await using fleet = await startFleet();
  await fleet.startOperator();
  await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
  const store = await fleet.store();
  await store.apply(webDeployment({ name: "web", selector: LAB }));
  await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 });
  const [container] = await fleet.containers();
  const agent = fleet.agents.get("dev-1")!.agent;
  await fleet.podman.removeContainer(container!.id);
  const passesBefore = agent.passes;
  const back = await waitFor("the container to come back", async () => {
    const cs = await fleet.containers();
    return cs.length === 1 && cs[0]!.state === "running" ? cs[0] : undefined;
  });
  assert.notEqual(back.id, container!.id);
  // The next periodic pass recreates it; counted too: a pass that may have been under way
  // at removal, and the quick confirmation pass after any action.
  assert.ok(agent.passes - passesBefore <= 3, `back after ${agent.passes - passesBefore} passes`);
  assert.equal(await curl(fleet, back.id), "fleet-test v1");
});

story("a device whose labels change gains and loses deployments", async () => {
  await using fleet = await startFleet();
  await fleet.startOperator();
  await fleet.startAgent({ deviceId: "dev-1", labels: { site: "shop" } });
  const store = await fleet.store();
  await store.apply(webDeployment({ name: "lab-app", selector: LAB }));
  await store.apply(
    webDeployment({ name: "shop-app", selector: { matchLabels: { site: "shop" } } }),
  );
  await waitForStatus(fleet, { name: "shop-app" }, { matched: 1, succeeded: 1 });
  await waitForStatus(fleet, { name: "lab-app" }, { matched: 0, succeeded: 0 });

  await fleet.stopAgent("dev-1");
  await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
  await waitForStatus(fleet, { name: "lab-app" }, { matched: 1, succeeded: 1 });
  await waitForStatus(fleet, { name: "shop-app" }, { matched: 0, succeeded: 0 });
  const names = await waitFor("only lab-app's container", async () => {
    const cs = await fleet.containers();
    return cs.length === 1 ? cs.map((c) => c.labels[ContainerLabels.deployment]) : undefined;
  });
  assert.deepEqual(names, ["lab-app"]);
});

story(
  "nats-server killed and restarted: containers untouched, everything recovers, a later apply converges",
  async () => {
    await using fleet = await startFleet();
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "dev-2", labels: { site: "lab" } });
    const store = await fleet.store();
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { matched: 2, succeeded: 2 });
    const before = await containerIds(fleet);

    await fleet.nats.kill();
    // Longer than a relist and several heartbeats: agents must leave containers alone.
    await new Promise((r) => setTimeout(r, (fleet.intervals.relist_seconds + 2) * 1000));
    assert.deepEqual(await containerIds(fleet), before);
    for (const c of await fleet.containers()) assert.equal(c.state, "running");

    await fleet.nats.restart();
    // As a user would: retry the apply until JetStream answers again (apply is idempotent).
    await waitFor(
      "the apply to go through",
      () => store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" })),
      30_000,
    );
    await waitForStatus(
      fleet,
      { name: "web" },
      { generation: 2, matched: 2, succeeded: 2 },
      60_000,
    );
    for (const c of await fleet.containers()) {
      assert.equal(await curl(fleet, c.id), "fleet-test v2");
    }
  },
);

story(
  "an agent started while NATS is down runs its cached desired state and converges when NATS returns",
  async () => {
    await using fleet = await startFleet();
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    const store = await fleet.store();
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 });

    await fleet.stopAgent("dev-1");
    for (const c of await fleet.containers()) await fleet.podman.removeContainer(c.id);
    await fleet.nats.kill();

    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    const running = await waitFor("the cached deployment to run", async () => {
      const cs = await fleet.containers();
      return cs.length === 1 && cs[0]!.state === "running" ? cs[0] : undefined;
    });
    assert.equal(await curl(fleet, running.id), "fleet-test v1");

    await fleet.nats.restart();
    await waitFor(
      "the apply to go through",
      () => store.apply(webDeployment({ name: "api", selector: LAB })),
      30_000,
    );
    await waitForStatus(fleet, { name: "api" }, { matched: 1, succeeded: 1 }, 60_000);
    await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 });
    assert.equal(
      (await containerIds(fleet)).get(running.name),
      running.id,
      "the cached container was kept",
    );
  },
);

story(
  "a malformed desired-state value or an unknown workload type fails only that deployment",
  async () => {
    await using fleet = await startFleet();
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    const store = await fleet.store();
    await store.apply(webDeployment({ name: "good", selector: LAB }));
    await waitForStatus(fleet, { name: "good" }, { matched: 1, succeeded: 1 });

    // Written straight into the deployments bucket, as a newer CLI or a person could.
    const nc = await connectNats({
      servers: [fleet.nats.url],
      credentials: noCredentials(),
      name: "t",
      logger: fleet.log,
    });
    try {
      const deployments = await new Kvm(nc).open(Buckets.deployments);
      const helm = webDeployment({ name: "helm", selector: LAB });
      const raw = JSON.parse(JSON.stringify(helm));
      raw.spec.score = { type: "HelmV1", data: { chart: "x" } };
      raw.metadata.generation = 1;
      await deployments.put("default.helm", JSON.stringify(raw));
      // The operator ignores an object its schema rejects, so unknown types reach devices only
      // through desired-state: write one there, as a newer operator would.
      const desired = await new Kvm(nc).open(Buckets.desiredState);
      await desired.put(
        "dev-1.default.future",
        JSON.stringify({
          namespace: "default",
          name: "future",
          generation: 1,
          score: { type: "HelmV1", data: {} },
        }),
      );
      await desired.put("dev-1.default.broken", "{not json");
      const agent = fleet.agents.get("dev-1")!.agent;
      const states = await waitFor("both failures reported", () => {
        const s = agent.states();
        return s.get("default.future")?.phase === "Failed" &&
            s.get("default.broken")?.phase === "Failed"
          ? s
          : undefined;
      });
      assert.match(states.get("default.future")!.lastError ?? "", /unknown workload type "HelmV1"/);
      assert.match(states.get("default.broken")!.lastError ?? "", /not valid JSON/);
      assert.equal(states.get("default.good")!.phase, "Running");
      await waitForStatus(fleet, { name: "good" }, { matched: 1, succeeded: 1 });
    } finally {
      await nc.close();
    }
  },
);

story("two namespaces with the same deployment name do not collide", async () => {
  await using fleet = await startFleet();
  await fleet.startOperator();
  await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
  const store = await fleet.store();
  await store.apply(webDeployment({ name: "web", namespace: "team-a", selector: LAB }));
  await store.apply(webDeployment({ name: "web", namespace: "team-b", selector: LAB, tag: "v2" }));
  await waitForStatus(fleet, { namespace: "team-a", name: "web" }, { matched: 1, succeeded: 1 });
  await waitForStatus(fleet, { namespace: "team-b", name: "web" }, { matched: 1, succeeded: 1 });
  const cs = await fleet.containers();
  assert.equal(cs.length, 2);
  const byNs = new Map(cs.map((c) => [c.labels[ContainerLabels.namespace], c]));
  assert.equal(await curl(fleet, byNs.get("team-a")!.id), "fleet-test v1");
  assert.equal(await curl(fleet, byNs.get("team-b")!.id), "fleet-test v2");
  await store.delete({ namespace: "team-a", name: "web" });
  await waitFor("only team-b left", async () => {
    const left = await fleet.containers();
    return left.length === 1 && left[0]!.labels[ContainerLabels.namespace] === "team-b" ||
      undefined;
  });
});

story(
  "buckets deleted while everything runs are rebuilt, aggregates come back, nothing is recreated",
  async () => {
    await using fleet = await startFleet();
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "dev-2", labels: { site: "lab" } });
    const store = await fleet.store();
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { matched: 2, succeeded: 2 });
    const before = await containerIds(fleet);

    const nc = await connectNats({
      servers: [fleet.nats.url],
      credentials: noCredentials(),
      name: "t",
      logger: fleet.log,
    });
    try {
      const jsm = await jetstreamManager(nc);
      for (const bucket of [Buckets.deviceInfo, Buckets.deviceState, Buckets.desiredState]) {
        await jsm.streams.delete(`KV_${bucket}`);
      }
      await waitFor("the buckets to be back", async () => {
        for (const bucket of [Buckets.deviceInfo, Buckets.deviceState, Buckets.desiredState]) {
          await jsm.streams.info(`KV_${bucket}`);
        }
        return true;
      });
      await waitFor(
        "desired state rewritten",
        async () => (await readBucket(nc, Buckets.desiredState, fleet.log)).size === 2 || undefined,
      );
      await waitFor("device info and state republished", async () => {
        const info = await new Kvm(nc).open(Buckets.deviceInfo);
        const state = await new Kvm(nc).open(Buckets.deviceState);
        return (await info.get("info.dev-1"))?.operation === "PUT" &&
            (await state.get("state.dev-2.default.web"))?.operation === "PUT" || undefined;
      }, 30_000);
    } finally {
      await nc.close();
    }
    await waitForStatus(fleet, { name: "web" }, { matched: 2, succeeded: 2 });
    // Longer than the agents' orphan grace: nothing may have been removed meanwhile.
    await new Promise((r) => setTimeout(r, (fleet.intervals.orphan_grace_seconds + 1) * 1000));
    assert.deepEqual(await containerIds(fleet), before);
  },
);
