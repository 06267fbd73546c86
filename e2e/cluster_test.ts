/**
 * The core loop on a 3-server nats-server cluster with buckets at 3 replicas: every client
 * (operator, agents, CLI) is given all three URLs. One story kills the server the operator
 * is connected to mid-run and brings it back.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Buckets, ContainerLabels } from "../core/mod.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { connectNats, noCredentials, readBucket } from "../adapters/nats/mod.ts";
import { LocalFleet } from "../sandbox/local_fleet.ts";
import { waitFor } from "../adapters/timers.ts";
import { type NatsCluster, startNatsCluster } from "../testing/nats_cluster.ts";
import { curl, waitForStatus, webDeployment } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };
const decoder = new TextDecoder();

/** Started by the fleet, kept here for the tests that kill and restart its servers. */
let cluster: NatsCluster | undefined;

async function startClusterFleet(): Promise<LocalFleet> {
  const fleet = stopOnDeadline(
    await LocalFleet.start({
      log: testLogger(),
      version: "0.0.0-test",
      staleAfterMs: 6000,
      cluster: async () => cluster = await startNatsCluster({ size: 3 }),
    }),
  );
  await ensureTestImage(fleet.podman, "v1");
  await ensureTestImage(fleet.podman, "v2");
  return fleet;
}

/** Keys and values of a bucket as text, sorted, for comparisons; gives up after 30 s. */
async function contents(
  nc: NatsConnection,
  fleet: LocalFleet,
  bucket: string,
  signal = AbortSignal.timeout(30_000),
) {
  const values = await readBucket(nc, bucket, fleet.log, { signal });
  return [...values.entries()].map(([k, v]) => [k, decoder.decode(v)] as const).sort();
}

story(
  "cluster: core loop with 3-replica buckets, apply → running → update recreates → delete removes",
  async () => {
    await using fleet = await startClusterFleet();
    assert.equal(fleet.natsUrls.length, 3);
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "lab-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "lab-2", labels: { site: "lab" } });
    const store = await fleet.store();

    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { generation: 1, matched: 2, succeeded: 2 });
    const v1 = await fleet.containers();
    assert.deepEqual(v1.map((c) => c.labels[ContainerLabels.deviceId]).sort(), ["lab-1", "lab-2"]);
    for (const c of v1) assert.equal(await curl(fleet, c.id), "fleet-test v1");

    const jsm = await jetstreamManager(await fleet.connection());
    for (const bucket of Object.values(Buckets)) {
      const info = await jsm.streams.info(`KV_${bucket}`);
      assert.equal(info.config.num_replicas, 3, `${bucket} has 3 replicas`);
    }

    await store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" }));
    await waitForStatus(fleet, { name: "web" }, { generation: 2, matched: 2, succeeded: 2 });
    const v2 = await waitFor("two v2 containers", async () => {
      const cs = await fleet.containers();
      return cs.length === 2 && cs.every((c) => c.image.endsWith(":v2")) ? cs : undefined;
    });
    const oldIds = new Set(v1.map((c) => c.id));
    assert.ok(v2.every((c) => !oldIds.has(c.id)), "v2 containers have new ids");

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

story(
  "cluster: the operator's server killed mid-run: clients fail over, an update converges, nothing is lost, the server rejoins",
  async () => {
    await using fleet = await startClusterFleet();
    assert.ok(cluster && fleet.cluster === cluster);
    await fleet.startOperator();
    await fleet.startAgent({ deviceId: "dev-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "dev-2", labels: { site: "lab" } });
    const store = await fleet.store();
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await store.apply(webDeployment({ name: "api", selector: LAB }));
    await waitForStatus(fleet, { name: "web" }, { generation: 1, matched: 2, succeeded: 2 });
    await waitForStatus(fleet, { name: "api" }, { generation: 1, matched: 2, succeeded: 2 });

    // The server the operator is connected to (getServer() is "host:port").
    const current = fleet.operatorConnection!.getServer();
    const port = Number(current.split(":").at(-1));
    const victim = Math.max(0, cluster.servers.findIndex((s) => s.port === port));
    const killedAt = Date.now();
    await cluster.servers[victim]!.kill();

    // As a user would: retry the apply until JetStream answers through another server.
    await waitFor(
      "the apply to go through",
      () => store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" })),
      30_000,
    );
    console.log(`failover: apply went through ${Date.now() - killedAt} ms after the kill`);
    await waitForStatus(
      fleet,
      { name: "web" },
      { generation: 2, matched: 2, succeeded: 2 },
      // Watches re-created on a new stream leader can take tens of seconds (see the log).
      120_000,
    );
    console.log(`failover: update converged ${Date.now() - killedAt} ms after the kill`);
    await waitFor("two v2 web containers", async () => {
      const cs = (await fleet.containers()).filter((c) =>
        c.labels[ContainerLabels.deployment] === "web"
      );
      return cs.length === 2 && cs.every((c) => c.image.endsWith(":v2")) || undefined;
    }, 60_000);
    for (const c of await fleet.containers()) {
      if (c.labels[ContainerLabels.deployment] !== "web") continue;
      assert.equal(await curl(fleet, c.id), "fleet-test v2");
    }
    assert.notEqual(
      Number(fleet.operatorConnection!.getServer().split(":").at(-1)),
      cluster.servers[victim]!.port,
      "the operator moved to another server",
    );

    // Nothing lost: desired state, reports and aggregates are all there and right.
    const nc = await fleet.connection();
    const expectDesired = [
      "dev-1.default.api",
      "dev-1.default.web",
      "dev-2.default.api",
      "dev-2.default.web",
    ];
    // Reads go through consumers on streams that may still be electing a leader after the kill
    // (tens of seconds on a loaded machine, see the log): each read is tried until it completes,
    // within the time the convergence had.
    const keysOf = (bucket: string, expected: string[]) =>
      waitFor(`every key of ${bucket}`, async (signal) => {
        const read = await contents(nc, fleet, bucket, signal);
        return read.map(([k]) => k).join() === expected.join() ? read : undefined;
      }, 120_000);
    const desired = await keysOf(Buckets.desiredState, expectDesired);
    for (const [key, value] of desired) {
      const generation = (JSON.parse(value) as { generation: number }).generation;
      assert.equal(generation, key.endsWith(".web") ? 2 : 1, key);
    }
    await keysOf(Buckets.deviceState, expectDesired.map((k) => `state.${k}`));
    await keysOf(Buckets.deviceInfo, ["info.dev-1", "info.dev-2"]);
    // A status read can wait as long (one CI run: its first read had not returned in 30 s).
    await waitForStatus(
      fleet,
      { name: "api" },
      { generation: 1, matched: 2, succeeded: 2 },
      120_000,
    );

    // Bring it back: it rejoins and, read through it alone, holds the same data.
    await cluster.servers[victim]!.restart();
    await cluster.waitReady();
    const direct = await connectNats({
      servers: [cluster.servers[victim]!.url],
      credentials: noCredentials(),
      name: "t-direct",
      logger: fleet.log,
    });
    try {
      await waitFor("the restarted server to serve the same desired state", async (signal) => {
        const d = await contents(direct, fleet, Buckets.desiredState, signal);
        return JSON.stringify(d) === JSON.stringify(desired) || undefined;
      }, 120_000);
      await waitFor("the restarted server to serve every report", async (signal) => {
        const s = await contents(direct, fleet, Buckets.deviceState, signal);
        return s.map(([k]) => k).join() === expectDesired.map((k) => `state.${k}`).join() ||
          undefined;
      }, 120_000);
    } finally {
      await direct.close();
    }
    await waitForStatus(
      fleet,
      { name: "web" },
      { generation: 2, matched: 2, succeeded: 2 },
      120_000,
    );
    await waitForStatus(
      fleet,
      { name: "api" },
      { generation: 1, matched: 2, succeeded: 2 },
      120_000,
    );
  },
);
