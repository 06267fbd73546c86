/**
 * Liveness on the control plane's clock (DESIGN.md §9 "Time"), end to end through each
 * deployment source: devices whose clocks run three hours behind or ahead are judged exactly
 * like a device with a correct clock — reachable when their heartbeats arrive, unreachable
 * when they stop — and what the operator reports as last seen is control-plane time. The
 * operator runs on a fake clock that each wait moves on; NATS (and the API server) are real.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Buckets, type DeploymentRef, DeploymentStatus, Heartbeat, keys } from "../core/mod.ts";
import { createLogger, type Logger, silentLogger } from "../adapters/logger.ts";
import { connectNats, ensureBucket, noCredentials, readBucket } from "../adapters/nats/mod.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { REACHABLE } from "../crd/device_resource.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { type NatsServer, startNatsServer } from "../sandbox/nats_server.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { waitFor } from "../adapters/timers.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { labelTestDevice, labelTestDeviceObject, testDeviceInfo } from "../testing/devices.ts";
import { RecordingDeviceSink } from "../testing/operator_fakes.ts";
import { installCrds } from "./kube_install.ts";
import { DeploymentType, DeviceType } from "./kube_resources.ts";
import { createOperator, type Operator, type OperatorOptions } from "./operator.ts";

const HOUR = 3_600_000;
const STALE_MS = 10_000;
/** How far each device's clock is off. */
const SKEWS: Record<string, number> = { behind: -3 * HOUR, exact: 0, ahead: 3 * HOUR };
const DEVICES = Object.keys(SKEWS).sort();
const WEB: DeploymentRef = { namespace: "default", name: "web" };
const web = singleServiceDeployment({
  name: "web",
  image: "localhost/web:1",
  selector: { matchLabels: { site: "a" } },
});
const decoder = new TextDecoder();

function testLogger(): Logger {
  const level = Deno.env.get("FLEET_TEST_LOG");
  return level ? createLogger({ level: level as "debug" | "info" }) : silentLogger;
}

/** Polls `check`, moving the operator's clock 25 ms on before each poll: its timers run on it. */
function drive<T>(clock: FakeClock, what: string, check: () => Promise<T | undefined>) {
  return waitFor(
    what,
    async () => {
      await clock.advance(25);
      return await check();
    },
    30_000,
    25,
  );
}

/** The agents of the three devices: what each writes, with its own (skewed) time. */
class Agents {
  readonly #nc: NatsConnection;
  readonly #info: KV;
  readonly #heartbeat: KV;

  private constructor(nc: NatsConnection, info: KV, heartbeat: KV) {
    this.#nc = nc;
    this.#info = info;
    this.#heartbeat = heartbeat;
  }

  static async open(nc: NatsConnection): Promise<Agents> {
    return new Agents(
      nc,
      await ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }),
      await ensureBucket(nc, Buckets.deviceHeartbeat, { replicas: 1, history: 1 }),
    );
  }

  /** Each device's info and a heartbeat; returns the real time span of the writes. */
  async start(): Promise<{ from: number; to: number }> {
    const from = Date.now();
    for (const deviceId of DEVICES) {
      const info = testDeviceInfo(deviceId, { site: "a" }, {
        arch: "aarch64",
        updatedAt: new Date(Date.now() + SKEWS[deviceId]!),
      });
      await this.#info.put(keys.deviceInfo(deviceId), JSON.stringify(info));
      await labelTestDevice(this.#nc, deviceId, { site: "a" });
    }
    await this.beat();
    return { from, to: Date.now() };
  }

  /** A heartbeat from each device, stamped with its own clock. */
  async beat(): Promise<void> {
    for (const deviceId of DEVICES) {
      const hb = Heartbeat.parse({ deviceId, at: Date.now() + SKEWS[deviceId]! });
      await this.#heartbeat.put(keys.heartbeat(deviceId), JSON.stringify(hb));
    }
  }
}

/** An operator on its own connection, driven by `clock`; waits until it is ready. */
async function startOperator(
  ns: NatsServer,
  clock: FakeClock,
  options: Partial<Omit<OperatorOptions, "nc" | "clock">>,
): Promise<{ operator: Operator; stop(): Promise<void> }> {
  const log = testLogger().with({ component: "operator" });
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "fleet-operator-test",
    logger: log,
  });
  const operator = createOperator({
    replicas: 1,
    staleAfterMs: STALE_MS,
    flushIntervalMs: 100,
    watchHeartbeatMs: 500,
    allowUnboundNamespaces: true,
    ...options,
    nc,
    log,
    clock,
  });
  const controller = new AbortController();
  const done = operator.run(controller.signal);
  let ready = false;
  void operator.ready.then(() => ready = true);
  await drive(clock, "the operator to be ready", () => Promise.resolve(ready || undefined));
  return {
    operator,
    stop: async () => {
      controller.abort();
      await done;
      await nc.close();
    },
  };
}

async function connectClient(ns: NatsServer): Promise<NatsConnection> {
  return await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "fleet-test-client",
    logger: testLogger(),
  });
}

/** `[from, to]` widened to whole seconds, as a Kubernetes timestamp keeps them. */
function inSeconds(ms: number, from: number, to: number): boolean {
  return ms >= Math.floor(from / 1000) * 1000 && ms <= to;
}

Deno.test("Operator judges devices whose clocks are hours off like one whose clock is right (nats source)", async () => {
  await using ns = await startNatsServer();
  const nc = await connectClient(ns);
  const sink = new RecordingDeviceSink();
  let running: Awaited<ReturnType<typeof startOperator>> | undefined;
  try {
    const agents = await Agents.open(nc);
    const stored = await agents.start();
    // The control plane's clock; the broker's is the same machine's.
    const clock = new FakeClock(Date.now());
    running = await startOperator(ns, clock, { deviceSink: sink });
    const { operator } = running;
    await new NatsDeploymentStore(nc, testLogger()).apply(web);
    const status = async () => {
      const raw = (await readBucket(nc, Buckets.deploymentStatus, silentLogger)).get("default.web");
      return raw ? DeploymentStatus.parse(JSON.parse(decoder.decode(raw))) : undefined;
    };

    // Heartbeats stored before the operator started count from when the broker stored them.
    await drive(clock, "3 matched, none unreachable", async () => {
      const a = (await status())?.aggregate;
      return a?.matchedDeviceCount === 3 && a.unreachable === 0 || undefined;
    });
    for (const id of DEVICES) {
      assert.deepEqual(sink.history(id), ["reachable"], id);
      const seen = sink.lastSeen.get(id) ?? 0;
      assert.ok(seen >= stored.from - 1 && seen <= stored.to + 1, `${id} last seen at ${seen}`);
    }

    // Live heartbeats count from when the operator received them.
    const before = clock.now();
    await agents.beat();
    await drive(clock, "the new heartbeats", () =>
      Promise.resolve(
        DEVICES.every((id) => (operator.view.lastSeen.get(id) ?? 0) >= before) || undefined,
      ));
    for (const id of DEVICES) {
      assert.ok((operator.view.lastSeen.get(id) ?? 0) <= clock.now(), id);
    }

    // Silence: all three go unreachable, at the same age.
    await clock.advance(STALE_MS + 1_000);
    await drive(
      clock,
      "3 unreachable",
      async () => (await status())?.aggregate.unreachable === 3 || undefined,
    );
    for (const id of DEVICES) assert.deepEqual(sink.history(id), ["reachable", "unreachable"], id);

    await agents.beat();
    await drive(
      clock,
      "none unreachable",
      async () => (await status())?.aggregate.unreachable === 0 || undefined,
    );
    for (const id of DEVICES) {
      assert.deepEqual(sink.history(id), ["reachable", "unreachable", "reachable"], id);
    }
  } finally {
    await running?.stop();
    await nc.close();
  }
});

interface DeviceCr {
  metadata: { name: string };
  status?: { lastSeen?: string; conditions?: { type: string; status: string }[] };
}

Deno.test("Operator judges devices whose clocks are hours off like one whose clock is right (kube source: Device objects)", async () => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  await installCrds(client, testLogger());
  await using ns = await startNatsServer();
  const nc = await connectClient(ns);
  let running: Awaited<ReturnType<typeof startOperator>> | undefined;
  try {
    const agents = await Agents.open(nc);
    // The kube source's registry: a person labelled each Device object.
    for (const deviceId of DEVICES) await labelTestDeviceObject(client, deviceId, { site: "a" });
    const stored = await agents.start();
    const clock = new FakeClock(Date.now());
    running = await startOperator(ns, clock, { source: { kind: "kube", client } });
    await new KubeDeploymentStore(client, testLogger()).apply(web);
    const devices = async (reachable: "True" | "False") => {
      const { items } = await client.list<DeviceCr>(DeviceType);
      const matching = items.filter((d) =>
        d.status?.conditions?.some((c) => c.type === REACHABLE && c.status === reachable)
      );
      return matching.length === DEVICES.length ? items : undefined;
    };
    const unreachable = async (count: number) => {
      const cr = await client.get<{ status?: { aggregate?: { unreachable: number } } }>(
        DeploymentType,
        WEB.name,
        WEB.namespace,
      );
      return cr?.status?.aggregate?.unreachable === count || undefined;
    };

    // Reachable, and last seen when the broker stored the heartbeat.
    const first = await drive(clock, "three reachable Device objects", () => devices("True"));
    for (const d of first) {
      const seen = Date.parse(d.status?.lastSeen ?? "");
      assert.ok(
        inSeconds(seen, stored.from, stored.to),
        `${d.metadata.name}: ${d.status?.lastSeen}`,
      );
    }
    await drive(clock, "none unreachable in the Deployment's status", () => unreachable(0));

    // Silence: all three go unreachable.
    await clock.advance(STALE_MS + 1_000);
    await drive(clock, "three unreachable Device objects", () => devices("False"));
    await drive(clock, "3 unreachable in the Deployment's status", () => unreachable(3));

    // Back: last seen is when the operator received the heartbeats, on its clock.
    const before = clock.now();
    await agents.beat();
    const back = await drive(clock, "three reachable Device objects again", () => devices("True"));
    const after = clock.now();
    for (const d of back) {
      const seen = Date.parse(d.status?.lastSeen ?? "");
      assert.ok(inSeconds(seen, before, after), `${d.metadata.name}: ${d.status?.lastSeen}`);
    }
    // The CLI's LAST SEEN is the Device object's.
    const rows = await new KubeDeploymentStore(client, testLogger()).devices();
    assert.deepEqual(rows.map((r) => r.info.deviceId), DEVICES);
    for (const row of rows) {
      assert.ok(
        inSeconds(row.lastSeen ?? 0, before, after),
        `${row.info.deviceId}: ${row.lastSeen}`,
      );
    }
  } finally {
    await running?.stop();
    await nc.close();
  }
});
