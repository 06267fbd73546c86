/**
 * Two agents configured with one device id (a cloned SD card, a copied config), against a
 * real nats-server and a real operator: the control plane notices, the newer agent stands by
 * and touches nothing, and takes over when the other one stops. Each agent runs on its own
 * fake clock (its heartbeats come when the test says), the operator on the real one.
 */
import assert from "node:assert/strict";
import {
  Buckets,
  buildDeployment,
  Heartbeat,
  InstanceConflict,
  keys,
  parseJsonWith,
  type StoredDeployment,
} from "../core/mod.ts";
import { connectNats, ensureBucket, noCredentials } from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { createOperator } from "../operator/operator.ts";
import { NatsDeviceConsumers } from "../operator/nats_device_consumers.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { MemoryRuntime } from "../testing/memory_runtime.ts";
import { runTestAgent } from "../testing/agents.ts";
import { eventually } from "../testing/eventually.ts";

const DEVICE = "pi-01";
const HEARTBEAT_MS = 10_000;
const CONSUMER_HEARTBEAT_MS = 1_000;

function web(image: string, generation: number): StoredDeployment {
  const d = buildDeployment({
    name: "web",
    namespace: "default",
    image,
    ports: [],
    env: [],
    volumes: [],
    selectors: ["site=lab"],
  });
  return {
    ...d,
    metadata: { ...d.metadata, generation, creationTimestamp: "2026-01-01T00:00:00Z" },
  };
}

Deno.test("Two agents with one device id: the newer stands by, touches nothing, and takes over when the other stops", async () => {
  const ns = await startNatsServer();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "instance-conflict-test",
    logger: silentLogger,
  });
  const stateDirs: string[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    const operatorAbort = new AbortController();
    // A stopped agent is judged gone after 3 s of real time, so the story ends quickly.
    const operator = createOperator({
      nc,
      log: silentLogger,
      replicas: 1,
      staleAfterMs: 3_000,
      flushIntervalMs: 200,
      allowUnboundNamespaces: true,
      deviceHeartbeatMs: CONSUMER_HEARTBEAT_MS,
    });
    const operatorDone = operator.run(operatorAbort.signal);
    stops.push(async () => {
      operatorAbort.abort();
      await operatorDone;
    });
    await operator.ready;
    const deployments = await ensureBucket(nc, Buckets.deployments, { replicas: 1, history: 1 });
    const desired = await ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 1 });
    const heartbeats = await ensureBucket(nc, Buckets.deviceHeartbeat, {
      replicas: 1,
      history: 1,
    });
    await deployments.put("default.web", JSON.stringify(web("localhost/web:1", 1)));
    // Targeting reads the labels the control plane gave the device, not those it reports.
    await (await ensureBucket(nc, Buckets.deviceLabels, { replicas: 1, history: 1 }))
      .put(keys.deviceLabels(DEVICE), JSON.stringify({ labels: { site: "lab" } }));
    // The device's consumer, which the operator makes once it sees the device's info: made
    // now, so that the first agent need not wait for it on its fake clock. With the operator's
    // settings: other ones would make the operator re-create it under the starting agent.
    await new NatsDeviceConsumers({ nc, log: silentLogger, heartbeatMs: CONSUMER_HEARTBEAT_MS })
      .ensure(DEVICE);

    const start = async () => {
      const stateDir = await Deno.makeTempDir({ prefix: "fleet-instance-test-" });
      stateDirs.push(stateDir);
      const clock = new FakeClock();
      const runtime = new MemoryRuntime(DEVICE);
      const { lines, stop } = runTestAgent({
        deviceId: DEVICE,
        stateDir,
        natsUrl: ns.url,
        runtime,
        clock,
        config: { labels: { site: "lab" }, intervals: { heartbeat_seconds: HEARTBEAT_MS / 1000 } },
      });
      stops.push(stop);
      return { clock, runtime, lines, stop };
    };
    const lastBeat = async () => {
      const entry = await heartbeats.get(keys.heartbeat(DEVICE));
      return entry ? parseJsonWith(Heartbeat, entry.string(), "heartbeat").instance : undefined;
    };
    const images = (runtime: MemoryRuntime) =>
      runtime.calls.filter((c) => c.startsWith("ensureImage"));

    const a = await start();
    await eventually("a runs web", () => a.runtime.containers.length === 1);
    const aId = await eventually("a's heartbeat", lastBeat);

    // The second machine starts as the same device: it heartbeats as soon as NATS answers.
    const b = await start();
    const bId = await eventually("b's heartbeat", async () => {
      const id = await lastBeat();
      return id !== aId ? id : undefined;
    });
    await eventually("b runs web too", () => b.runtime.containers.length === 1);

    // a's next heartbeat follows b's: two agents are running at once.
    await a.clock.advance(HEARTBEAT_MS);
    const conflict = await eventually("the decision in desired-state", async () => {
      const entry = await desired.get(keys.agentConflict(DEVICE));
      return entry?.operation === "PUT"
        ? parseJsonWith(InstanceConflict, entry.string(), "conflict")
        : undefined;
    });
    assert.equal(conflict.owner, aId, "the agent seen first keeps the device");
    assert.deepEqual(conflict.standby, [bId]);
    await eventually("b says it stands by", () => b.lines.some((l) => l.includes("stands by")));
    await eventually(
      "a says it keeps the containers",
      () => a.lines.some((l) => l.includes("keeps managing the containers")),
    );
    assert.equal(operator.view.agentConflicts.get(DEVICE)?.owner, aId);
    const [row] = await new NatsDeploymentStore(nc, silentLogger).devices();
    assert.deepEqual(row?.agentConflict, conflict, "fleet get devices shows it");

    // A new version: the owner rolls it out; the standby agent touches nothing, relists included.
    const bCalls = b.runtime.calls.length;
    await deployments.put("default.web", JSON.stringify(web("localhost/web:2", 2)));
    await eventually(
      "a runs web:2",
      () => images(a.runtime).includes("ensureImage localhost/web:2"),
    );
    await b.clock.advance(5 * 60_000);
    assert.deepEqual(b.runtime.calls.slice(bCalls), [], "the standby agent touched nothing");
    assert.equal(b.runtime.containers.length, 1, "and left its container running");

    // The owner stops for good: once it is judged gone, b takes over and catches up.
    await a.stop();
    await eventually("b takes over", async () => {
      await b.clock.advance(HEARTBEAT_MS);
      return b.lines.some((l) => l.includes("takes over"));
    });
    await eventually(
      "b runs web:2",
      () => images(b.runtime).includes("ensureImage localhost/web:2"),
    );
    assert.equal((await desired.get(keys.agentConflict(DEVICE)))?.operation, "DEL");
  } finally {
    for (const stop of stops.reverse()) await stop();
    await nc.close();
    await ns[Symbol.asyncDispose]();
    for (const dir of stateDirs) await Deno.remove(dir, { recursive: true });
  }
});
