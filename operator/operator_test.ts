/**
 * The Operator against a real nats-server. Devices are simulated by writing what an agent
 * writes (DeviceInfo, Heartbeat, DeploymentState) straight into their buckets; deployments
 * go through the NatsDeploymentStore like `fleet apply`. Each test starts its own server (and
 * a kube-apiserver where it runs the kube source).
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  type Aggregate,
  API_VERSION,
  Buckets,
  Deployment,
  type DeploymentRef,
  DeploymentState,
  DeploymentStatus,
  DesiredState,
  desiredStateOf,
  DEVICE_ID_LABEL,
  Heartbeat,
  keys,
  type Labels,
  type LabelSelector,
  type Phase,
  revisionHash,
  type RolloutStatus,
  UNKNOWN_GENERATION,
} from "../core/mod.ts";
import { createLogger, type Logger, silentLogger } from "../adapters/logger.ts";
import { type NatsServer, startNatsServer } from "../sandbox/nats_server.ts";
import {
  connectNats,
  ensureBucket,
  noCredentials,
  readBucket,
  watchBucket,
} from "../adapters/nats/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { warnOfPortConflicts } from "../cli/port_warnings.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { installCrds } from "./kube_install.ts";
import { DeploymentType } from "./kube_resources.ts";
import type { Condition } from "../crd/device_resource.ts";
import { renderDeployments } from "../cli/render.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { labelTestDeviceObject, testDeviceInfo } from "../testing/devices.ts";
import { createOperator, type Operator, type OperatorOptions } from "./operator.ts";
import type { OperatorStats } from "./operator_stats.ts";
import { NatsRevisions } from "./nats_revisions.ts";
import { renderRevisions } from "../cli/rollout_history.ts";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/** Logs only when FLEET_TEST_LOG is set (its value is the level), like the e2e stories. */
function testLogger(): Logger {
  const level = Deno.env.get("FLEET_TEST_LOG");
  return level ? createLogger({ level: level as "debug" | "info" }) : silentLogger;
}

/** A logger that keeps warnings and errors in `lines` (and prints them under FLEET_TEST_LOG). */
function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const echo = Deno.env.get("FLEET_TEST_LOG") !== undefined;
  const log = createLogger({
    level: "warn",
    timestamps: false,
    write: (line) => {
      lines.push(line);
      if (echo) console.error(line);
    },
  });
  return { log, lines };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const decoder = new TextDecoder();
const POLL_MS = 25;
const TIMEOUT_MS = 15_000;

/** Polls like kubebuilder's `Eventually`. */
function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined) {
  return waitFor(what, check, TIMEOUT_MS, POLL_MS);
}

function deployment(
  name: string,
  targetSelector: LabelSelector,
  options: { namespace?: string; image?: string; ports?: string[] } = {},
): Deployment {
  // Parsed, so schema defaults are filled in exactly as the operator will see them.
  return Deployment.parse({
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, namespace: options.namespace ?? "default" },
    spec: {
      targetSelector,
      score: {
        type: "PodmanV0",
        data: {
          services: [{
            name: "main",
            image: options.image ?? "registry.local/web:v1",
            ports: options.ports ?? [],
          }],
        },
      },
    },
  });
}

/** The desired-state value the operator must write for `d` at `generation`. */
function desiredOf(d: Deployment, generation: number): DesiredState {
  return desiredStateOf({ ...d, metadata: { ...d.metadata, generation } });
}

function refOf(d: Deployment): DeploymentRef {
  return { namespace: d.metadata.namespace, name: d.metadata.name };
}

const SITE_A: LabelSelector = { matchLabels: { site: "a" } };
const SITE_B: LabelSelector = { matchLabels: { site: "b" } };

interface ExpectedStatus {
  generation: number;
  matched: number;
  succeeded?: number;
  failed?: number;
  /** Defaults to matched - succeeded - failed. */
  pending?: number;
  unreachable?: number;
  /** Compared only when given. */
  lastError?: Aggregate["lastError"];
}

function statusMatches(s: DeploymentStatus, e: ExpectedStatus): boolean {
  const a = s.aggregate;
  const succeeded = e.succeeded ?? 0;
  const failed = e.failed ?? 0;
  return s.observedGeneration === e.generation &&
    a.matchedDeviceCount === e.matched &&
    a.succeeded === succeeded &&
    a.failed === failed &&
    a.pending === (e.pending ?? e.matched - succeeded - failed) &&
    a.unreachable === (e.unreachable ?? 0) &&
    (e.lastError === undefined || JSON.stringify(a.lastError) === JSON.stringify(e.lastError));
}

function statsDelta(now: OperatorStats, before: OperatorStats): OperatorStats {
  return {
    desiredPuts: now.desiredPuts - before.desiredPuts,
    desiredDeletes: now.desiredDeletes - before.desiredDeletes,
    statusWrites: now.statusWrites - before.statusWrites,
    writeErrors: now.writeErrors - before.writeErrors,
    bucketsRecreated: now.bucketsRecreated - before.bucketsRecreated,
  };
}

const NO_WRITES: OperatorStats = {
  desiredPuts: 0,
  desiredDeletes: 0,
  statusWrites: 0,
  writeErrors: 0,
  bucketsRecreated: 0,
};

interface RunningOperator {
  operator: Operator;
  /** Whether `run()` has returned or thrown. */
  readonly stopped: boolean;
  /** Aborts `run()`, waits for it and closes the operator's connection. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A test client on one nats-server: plays the agents (writes their buckets), `fleet apply`
 * (the store), and starts operators, each on its own connection like a real process.
 */
class TestFleet implements AsyncDisposable {
  readonly #ns: NatsServer;
  readonly nc: NatsConnection;
  readonly log: Logger;
  readonly store: NatsDeploymentStore;
  readonly #info: KV;
  readonly #heartbeat: KV;
  readonly #state: KV;
  readonly #desired: KV;
  readonly #deployments: KV;
  readonly #labels: KV;
  readonly #operators: RunningOperator[] = [];
  /** The operator's clock when a test drives it: every wait moves it along. */
  #clock: FakeClock | undefined;

  private constructor(
    ns: NatsServer,
    nc: NatsConnection,
    log: Logger,
    kvs: [KV, KV, KV, KV, KV, KV],
  ) {
    this.#ns = ns;
    this.nc = nc;
    this.log = log;
    this.store = new NatsDeploymentStore(nc, log, 1);
    [this.#info, this.#heartbeat, this.#state, this.#desired, this.#deployments, this.#labels] =
      kvs;
  }

  static async open(ns: NatsServer): Promise<TestFleet> {
    const log = testLogger();
    const nc = await connectNats({
      servers: [ns.url],
      credentials: noCredentials(),
      name: "fleet-test-client",
      logger: log.with({ component: "test-client" }),
    });
    // Same settings as the operator creates them with.
    const kvs = await Promise.all([
      ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }),
      ensureBucket(nc, Buckets.deviceHeartbeat, { replicas: 1, history: 1 }),
      ensureBucket(nc, Buckets.deviceState, { replicas: 1, history: 3 }),
      ensureBucket(nc, Buckets.desiredState, { replicas: 1, history: 3 }),
      ensureBucket(nc, Buckets.deployments, { replicas: 1, history: 5 }),
      ensureBucket(nc, Buckets.deviceLabels, { replicas: 1, history: 3 }),
    ]);
    return new TestFleet(ns, nc, log, kvs);
  }

  /** Starts an operator and waits until it has read everything and run its first sync. */
  async startOperator(
    options: Partial<Omit<OperatorOptions, "nc">> = {},
  ): Promise<RunningOperator> {
    const log = (options.log ?? this.log).with({ component: "operator" });
    const nc = await connectNats({
      servers: [this.#ns.url],
      credentials: noCredentials(),
      name: "fleet-operator-test",
      logger: log,
    });
    if (options.clock instanceof FakeClock) this.#clock = options.clock;
    const operator = createOperator({
      replicas: 1,
      flushIntervalMs: 100,
      auditIntervalMs: 1000,
      watchHeartbeatMs: 500,
      // Most stories predate tenancy: their namespaces are bound to no device.
      allowUnboundNamespaces: true,
      ...options,
      nc,
      log,
    });
    const controller = new AbortController();
    let stopped = false;
    let failure: unknown;
    const done = operator.run(controller.signal).catch((error) => failure = error).finally(() =>
      stopped = true
    );
    let closed: Promise<void> | undefined;
    const running: RunningOperator = {
      operator,
      get stopped() {
        return stopped;
      },
      stop: () =>
        closed ??= (async () => {
          controller.abort();
          await done;
          await nc.close();
          if (failure !== undefined) throw failure;
        })(),
    };
    this.#operators.push(running);
    const ended = done.then(() => {
      throw new Error(`the operator stopped before it was ready: ${failure}`);
    });
    await Promise.race([operator.ready, ended]);
    return running;
  }

  /**
   * A device labelled `labels` in the registry by a person, and what its agent writes when it
   * starts: its DeviceInfo (reporting the same labels) and, unless `null`, a heartbeat.
   */
  async device(
    deviceId: string,
    labels: Labels,
    heartbeatAt: number | null = Date.now(),
  ): Promise<void> {
    await this.label(deviceId, labels);
    await this.reportInfo(deviceId, labels, heartbeatAt);
  }

  /** What an agent writes when it starts: its DeviceInfo and, unless `null`, a heartbeat. */
  async reportInfo(
    deviceId: string,
    reported: Labels,
    heartbeatAt: number | null = Date.now(),
  ): Promise<void> {
    await this.#info.put(
      keys.deviceInfo(deviceId),
      JSON.stringify(testDeviceInfo(deviceId, reported)),
    );
    if (heartbeatAt !== null) await this.heartbeat(deviceId, heartbeatAt);
  }

  /** A person sets the device's labels in the registry (undefined: removes its entry). */
  async label(deviceId: string, labels: Labels | undefined): Promise<void> {
    if (labels === undefined) await this.#labels.delete(keys.deviceLabels(deviceId));
    else await this.#labels.put(keys.deviceLabels(deviceId), JSON.stringify({ labels }));
  }

  async heartbeat(deviceId: string, at: number): Promise<void> {
    const hb = Heartbeat.parse({ deviceId, at });
    await this.#heartbeat.put(keys.heartbeat(deviceId), JSON.stringify(hb));
  }

  /**
   * What an agent writes on a phase change; returns the value written. An agent reports only
   * on what it was given: once the operator targets the device (wait for its desired-state
   * key), or the operator rightly ignores the report.
   */
  async report(
    deviceId: string,
    ref: DeploymentRef,
    generation: number,
    phase: Phase,
    lastError: string | null = null,
    lastEventAt = new Date().toISOString(),
  ): Promise<DeploymentState> {
    const state = DeploymentState.parse({
      deviceId,
      namespace: ref.namespace,
      deployment: ref.name,
      generation,
      phase,
      lastError,
      lastEventAt,
    });
    await this.#state.put(keys.deviceState(deviceId, ref), JSON.stringify(state));
    return state;
  }

  /** Writes raw bytes to a bucket, for malformed values and hand-written keys. */
  async putRaw(
    bucket: "device-info" | "device-state" | "desired-state" | "fleet-deployments",
    key: string,
    value: string,
  ): Promise<void> {
    const kv = {
      [Buckets.deviceInfo]: this.#info,
      [Buckets.deviceState]: this.#state,
      [Buckets.desiredState]: this.#desired,
      [Buckets.deployments]: this.#deployments,
    }[bucket];
    await kv.put(key, value);
  }

  /** desired-state as it is now: key → parsed value (the raw JSON, not re-shaped). */
  async desired(): Promise<Map<string, unknown>> {
    const raw = await readBucket(this.nc, Buckets.desiredState, this.log);
    return new Map([...raw].map(([k, v]) => [k, JSON.parse(decoder.decode(v))]));
  }

  async desiredKeys(): Promise<string[]> {
    return [...(await this.desired()).keys()].sort();
  }

  async statuses(): Promise<Map<string, DeploymentStatus>> {
    const raw = await readBucket(this.nc, Buckets.deploymentStatus, this.log);
    return new Map(
      [...raw].map(([k, v]) => [k, DeploymentStatus.parse(JSON.parse(decoder.decode(v)))]),
    );
  }

  /** Current revision of every key in `bucket`. */
  async revisions(bucket: string): Promise<Map<string, number>> {
    const revisions = new Map<string, number>();
    const stop = new AbortController();
    try {
      for await (
        const event of watchBucket({ nc: this.nc, bucket, logger: this.log, signal: stop.signal })
      ) {
        if (event.type === "ready") break;
        if (event.type === "put") revisions.set(event.key, event.revision);
        else revisions.delete(event.key);
      }
    } finally {
      stop.abort();
    }
    return revisions;
  }

  /** Waits until desired-state holds exactly `expected` keys. */
  async waitForDesiredKeys(expected: string[]): Promise<Map<string, unknown>> {
    const want = [...expected].sort();
    let last: string[] = [];
    try {
      return await this.#eventually(`desired-state keys ${JSON.stringify(want)}`, async () => {
        const desired = await this.desired();
        last = [...desired.keys()].sort();
        return JSON.stringify(last) === JSON.stringify(want) ? desired : undefined;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}; last keys: ${JSON.stringify(last)}`);
    }
  }

  /** Waits until the stored status of `ref` shows `expected`. */
  async waitForStatus(ref: DeploymentRef, expected: ExpectedStatus): Promise<DeploymentStatus> {
    const key = keys.deploymentStatus(ref);
    let last: DeploymentStatus | undefined;
    try {
      return await this.#eventually(
        `status of ${key} to be ${JSON.stringify(expected)}`,
        async () => {
          last = (await this.statuses()).get(key);
          return last && statusMatches(last, expected) ? last : undefined;
        },
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`);
    }
  }

  async waitForNoStatus(ref: DeploymentRef): Promise<void> {
    const key = keys.deploymentStatus(ref);
    await this.#eventually(
      `no status at ${key}`,
      async () => !(await this.statuses()).has(key) || undefined,
    );
  }

  /** {@link eventually}, moving a driven operator clock on by one poll interval per poll. */
  #eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    const clock = this.#clock;
    if (!clock) return eventually(what, check);
    return eventually(what, async () => {
      await clock.advance(POLL_MS);
      return await check();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const op of this.#operators) await op.stop();
    await this.nc.close();
  }
}

/** A kube-apiserver with the CRDs installed, and a fleet with device a1 at site=a. */
class KubeFleet implements AsyncDisposable {
  private constructor(
    readonly client: KubeClient,
    readonly fleet: TestFleet,
    readonly dispose: () => Promise<void>,
  ) {}

  static async start(): Promise<KubeFleet> {
    await using stack = new AsyncDisposableStack();
    const kube = stack.use(await startKubeApiServer());
    const client = stack.use(new KubeClient(kube.adminConfig));
    await installCrds(client, silentLogger);
    const ns = stack.use(await startNatsServer());
    const fleet = stack.use(await TestFleet.open(ns));
    await fleet.device("a1", { site: "a" });
    // On the kube source the Device object's labels are the registry: a person labelled a1.
    await labelTestDeviceObject(client, "a1", { site: "a" });
    const owned = stack.move();
    return new KubeFleet(client, fleet, () => owned.disposeAsync());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

Deno.test("Operator writes desired state to exactly the devices the selector matches, and a status", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.device("a1", { site: "a" });
  await fleet.device("a2", { site: "a" });
  await fleet.device("b1", { site: "b" });
  const { operator } = await fleet.startOperator();

  const web = deployment("web", SITE_A);
  assert.deepEqual(await fleet.store.apply(web), { outcome: "created", generation: 1 });

  const status = await fleet.waitForStatus(refOf(web), { generation: 1, matched: 2 });
  assert.deepEqual(status.aggregate, {
    matchedDeviceCount: 2,
    succeeded: 0,
    failed: 0,
    pending: 2,
    unreachable: 0,
    lastError: null,
  });
  assert.equal(status.namespace, "default");
  assert.equal(status.name, "web");
  assert.equal(status.observedGeneration, 1);

  const desired = await fleet.desired();
  assert.deepEqual([...desired.keys()].sort(), ["a1.default.web", "a2.default.web"]);
  for (const value of desired.values()) {
    assert.deepEqual(value, desiredOf(web, 1));
    DesiredState.parse(value);
  }
  assert.equal(operator.stats.desiredPuts, 2);
  assert.equal(operator.stats.desiredDeletes, 0);
  assert.equal(operator.stats.writeErrors, 0);
});

Deno.test("Operator folds device reports into the aggregate; older generations count as pending", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2", "a3"]) await fleet.device(id, { site: "a" });
  await fleet.startOperator();
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  await fleet.store.apply(web);
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, lastError: null });

  await fleet.report("a1", ref, 1, "Running");
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, succeeded: 1, pending: 2 });

  const at = new Date().toISOString();
  await fleet.report("a2", ref, 1, "Failed", "pull failed: manifest unknown", at);
  const failed = await fleet.waitForStatus(ref, {
    generation: 1,
    matched: 3,
    succeeded: 1,
    failed: 1,
    pending: 1,
  });
  assert.deepEqual(failed.aggregate.lastError, {
    deviceId: "a2",
    message: "pull failed: manifest unknown",
    at,
  });

  // A new generation: every report still speaks for generation 1, so all are pending.
  const v2 = deployment("web", SITE_A, { image: "registry.local/web:v2" });
  assert.deepEqual(await fleet.store.apply(v2), { outcome: "configured", generation: 2 });
  await fleet.waitForStatus(ref, { generation: 2, matched: 3, pending: 3, lastError: null });

  await fleet.report("a1", ref, 2, "Running");
  await fleet.waitForStatus(ref, { generation: 2, matched: 3, succeeded: 1, pending: 2 });

  // An agent that could not even read its desired state reports generation 0: that failure
  // counts against the current generation.
  const unknownAt = new Date().toISOString();
  await fleet.report(
    "a3",
    ref,
    UNKNOWN_GENERATION,
    "Failed",
    "unreadable desired state",
    unknownAt,
  );
  const unknown = await fleet.waitForStatus(ref, {
    generation: 2,
    matched: 3,
    succeeded: 1,
    failed: 1,
    pending: 1,
  });
  assert.deepEqual(unknown.aggregate.lastError, {
    deviceId: "a3",
    message: "unreadable desired state",
    at: unknownAt,
  });
});

Deno.test("Operator writes nothing in a steady state", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  await fleet.device("b1", { site: "b" });
  const flushIntervalMs = 100;
  const { operator } = await fleet.startOperator({ flushIntervalMs });
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  await fleet.store.apply(web);
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web"]);
  await fleet.report("a1", ref, 1, "Running");
  // lastError.at is part of the aggregate: a re-publication keeps the event's time.
  const failedAt = new Date().toISOString();
  await fleet.report("a2", ref, 1, "Failed", "exited with code 1", failedAt);
  await fleet.waitForStatus(ref, { generation: 1, matched: 2, succeeded: 1, failed: 1 });

  const before = { ...operator.stats };
  const statusRevisions = await fleet.revisions(Buckets.deploymentStatus);
  const desiredRevisions = await fleet.revisions(Buckets.desiredState);
  // Agents keep sending heartbeats and re-publish their info and reports (same content,
  // new timestamps); none of it changes anything. Nothing is expected to happen, so this
  // one waits: several flush and staleness ticks.
  for (let round = 0; round < 4; round++) {
    for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
    await fleet.device("b1", { site: "b" });
    await fleet.report("a1", ref, 1, "Running");
    await fleet.report("a2", ref, 1, "Failed", "exited with code 1", failedAt);
    await sleep(flushIntervalMs * 2);
  }
  assert.deepEqual(statsDelta(operator.stats, before), NO_WRITES);
  assert.deepEqual(await fleet.revisions(Buckets.deploymentStatus), statusRevisions);
  assert.deepEqual(await fleet.revisions(Buckets.desiredState), desiredRevisions);
});

Deno.test("Operator restart converges without rewriting unchanged keys", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  await fleet.device("b1", { site: "b" });
  const web = deployment("web", SITE_A);
  const api = deployment("api", SITE_B, { namespace: "team-b" });
  const first = await fleet.startOperator();
  await fleet.store.apply(web);
  await fleet.store.apply(api);
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web", "b1.team-b.api"]);
  await fleet.report("a1", refOf(web), 1, "Running");
  await fleet.report("b1", refOf(api), 1, "Failed", "port 8080 in use");
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 2, succeeded: 1 });
  await fleet.waitForStatus(refOf(api), { generation: 1, matched: 1, failed: 1 });
  await first.stop();

  const desiredRevisions = await fleet.revisions(Buckets.desiredState);
  const statusRevisions = await fleet.revisions(Buckets.deploymentStatus);
  assert.equal(desiredRevisions.size, 3);
  assert.equal(statusRevisions.size, 2);

  const flushIntervalMs = 100;
  const second = await fleet.startOperator({ flushIntervalMs });
  assert.equal(second.operator.stats.desiredPuts, 0);
  assert.equal(second.operator.stats.desiredDeletes, 0);
  // Statuses go out on the flush tick after `ready`: give it several.
  await sleep(flushIntervalMs * 8);
  assert.deepEqual(second.operator.stats, NO_WRITES);
  assert.deepEqual(await fleet.revisions(Buckets.desiredState), desiredRevisions);
  assert.deepEqual(await fleet.revisions(Buckets.deploymentStatus), statusRevisions);

  // And it is live: a new device gets its key.
  await fleet.device("a3", { site: "a" });
  await fleet.waitForDesiredKeys([
    "a1.default.web",
    "a2.default.web",
    "a3.default.web",
    "b1.team-b.api",
  ]);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 3, succeeded: 1 });
  assert.equal(second.operator.stats.desiredPuts, 1);
});

Deno.test("Operator port conflict: the second deployment on a host port is Failed on the device until the first is deleted", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.device("a1", { site: "a" });
  const flushIntervalMs = 100;
  const first = await fleet.startOperator({ flushIntervalMs });
  const web = deployment("web", SITE_A, { ports: ["8080:80"] });
  const api = deployment("api", SITE_A, { ports: ["8080:8080"] });
  await fleet.store.apply(web);
  const written = await fleet.waitForDesiredKeys(["a1.default.web"]);
  await fleet.store.apply(api);
  // a1 never reports api: it is Failed there all the same, not pending.
  const refused = await fleet.waitForStatus(refOf(api), { generation: 1, matched: 1, failed: 1 });
  assert.equal(
    refused.aggregate.lastError?.message,
    "port 8080/tcp is already used by deployment default/web",
  );
  assert.equal(refused.aggregate.lastError?.deviceId, "a1");
  await fleet.report("a1", refOf(web), 1, "Running");
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1, succeeded: 1 });
  assert.deepEqual(await fleet.desired(), written, "web's desired state is untouched");

  // Steady, and after a restart too: nothing is written.
  const desiredRevisions = await fleet.revisions(Buckets.desiredState);
  const statusRevisions = await fleet.revisions(Buckets.deploymentStatus);
  const before = { ...first.operator.stats };
  await sleep(flushIntervalMs * 4);
  assert.deepEqual(statsDelta(first.operator.stats, before), NO_WRITES);
  await first.stop();
  const second = await fleet.startOperator({ flushIntervalMs });
  await sleep(flushIntervalMs * 8);
  assert.deepEqual(second.operator.stats, NO_WRITES);
  assert.deepEqual(await fleet.revisions(Buckets.desiredState), desiredRevisions);
  assert.deepEqual(await fleet.revisions(Buckets.deploymentStatus), statusRevisions);

  // The holder goes: the refused one is written.
  await fleet.store.delete(refOf(web));
  const desired = await fleet.waitForDesiredKeys(["a1.default.api"]);
  assert.deepEqual(desired.get("a1.default.api"), desiredOf(api, 1));
  await fleet.waitForStatus(refOf(api), { generation: 1, matched: 1, lastError: null });
});

Deno.test("Operator port conflict (kube source): the second Deployment's status is Failed with the message, and fleet apply sees it coming", async () => {
  await using kube = await KubeFleet.start();
  const { client, fleet } = kube;
  await fleet.startOperator({ source: { kind: "kube", client } });
  const store = new KubeDeploymentStore(client, fleet.log);
  const web = deployment("web", SITE_A, { ports: ["8080:80"] });
  const api = deployment("api", SITE_A, { ports: ["8080:8080"] });
  await store.apply(web);
  await fleet.waitForDesiredKeys(["a1.default.web"]);

  // The CLI reads the Deployments and the Device objects the operator mirrors.
  const { log, lines } = capturingLogger();
  await eventually(
    "the Device object of a1",
    async () => (await store.devices()).length === 1 || undefined,
  );
  await warnOfPortConflicts(store, api, log);
  assert.deepEqual(lines, [
    "WARN  port 8080/tcp is already used by deployment default/web on 1 device(s) (a1); " +
    "deployment default/api will be Failed there",
  ]);

  await store.apply(api);
  const status = await eventually("api's status.aggregate to show a1 Failed", async () => {
    const cr = await client.get<{ status?: { aggregate?: Aggregate } }>(
      DeploymentType,
      "api",
      "default",
    );
    const aggregate = cr?.status?.aggregate;
    return aggregate?.failed === 1 ? aggregate : undefined;
  });
  assert.equal(status.pending, 0);
  assert.deepEqual(
    status.lastError?.message,
    "port 8080/tcp is already used by deployment default/web",
  );
  assert.deepEqual(await fleet.desiredKeys(), ["a1.default.web"]);

  await store.delete(refOf(web));
  await fleet.waitForDesiredKeys(["a1.default.api"]);
});

/** A Deployment CR as `kubectl apply` sends it: no check but the CRD schema's. */
function kubectlObject(name: string, env: { name: string; value: string }[]) {
  return {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, namespace: "default" },
    spec: {
      targetSelector: SITE_A,
      score: {
        type: "PodmanV0",
        data: { services: [{ name: "main", image: "registry.local/web:v1", env }] },
      },
    },
  };
}

/** Over MAX_ARG_STRLEN: the CRD schema stores it, the kernel would refuse it on the device. */
const TOO_LONG = [{ name: "BIG", value: "x".repeat(140_000) }];
const ENV_PROBLEM = 'spec.score.data.services[0].env[0].value: environment variable "BIG" is ' +
  "140004 bytes as NAME=value";

interface DeploymentCr {
  metadata: { generation: number; resourceVersion: string; finalizers?: string[] };
  status?: {
    observedGeneration?: number;
    aggregate?: Aggregate;
    conditions?: Condition[];
    rollout?: RolloutStatus;
  };
}

/** Waits until the CR's Accepted condition is `status` for `generation`; returns it. */
function waitForAccepted(
  client: KubeClient,
  name: string,
  status: "True" | "False",
  generation: number,
): Promise<Condition> {
  return eventually(
    `${name}'s condition Accepted=${status} for generation ${generation}`,
    async () => {
      const cr = await client.get<DeploymentCr>(DeploymentType, name, "default");
      const accepted = cr?.status?.conditions?.find((c) => c.type === "Accepted");
      return accepted?.status === status && accepted.observedGeneration === generation
        ? accepted
        : undefined;
    },
  );
}

Deno.test("Operator (kube source) refuses a Deployment applied with kubectl that core refuses, says why on its status and in fleet get, and takes it once fixed", async () => {
  await using kube = await KubeFleet.start();
  const { client, fleet } = kube;
  await fleet.startOperator({ source: { kind: "kube", client } });
  const kubectl = { fieldManager: "kubectl", force: true };

  await client.apply(DeploymentType, kubectlObject("big", TOO_LONG), kubectl);
  const refused = await waitForAccepted(client, "big", "False", 1);
  assert.equal(refused.reason, "InvalidSpec");
  assert.ok(refused.message.startsWith(`generation 1 refused: ${ENV_PROBLEM}`), refused.message);
  assert.match(refused.message, /no earlier generation was accepted, so no device runs/);
  assert.match(refused.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(await fleet.desiredKeys(), []);

  // fleet get deployments --target kube lists it as refused, with why.
  const store = new KubeDeploymentStore(client, fleet.log);
  const [row] = await store.deployments();
  assert.equal(row?.refused, refused.message);
  assert.equal(row?.deployment.spec, undefined);
  const table = renderDeployments(await store.deployments(), "table", Date.now());
  assert.match(table, /^default\s+big\s+1!\s/m);
  assert.ok(table.endsWith(`\n\ndefault/big ${refused.message}`), table);

  // Fixed: accepted, written to the device, and the condition says so.
  await client.apply(
    DeploymentType,
    kubectlObject("big", [{ name: "SMALL", value: "x" }]),
    kubectl,
  );
  const accepted = await waitForAccepted(client, "big", "True", 2);
  assert.equal(accepted.reason, "Valid");
  assert.equal(accepted.message, "generation 2 accepted");
  const desired = await fleet.waitForDesiredKeys(["a1.default.big"]);
  assert.equal((desired.get("a1.default.big") as DesiredState).generation, 2);
  assert.equal((await store.deployments())[0]?.refused, undefined);
});

Deno.test("Operator (kube source) rolls a Progressive Deployment out: status.rollout, its conditions, the printer columns' fields, and a restart resumes it", async () => {
  await using kube = await KubeFleet.start();
  const { client, fleet } = kube;
  await fleet.device("a2", { site: "a" });
  await labelTestDeviceObject(client, "a2", { site: "a" });
  const first = await fleet.startOperator({ source: { kind: "kube", client } });
  const kubectl = { fieldManager: "kubectl", force: true };
  const object = (value: string) => {
    const o = kubectlObject("web", [{ name: "A", value }]);
    return {
      ...o,
      spec: {
        ...o.spec,
        rollout: { strategy: "Progressive", batches: [{ limit: 1, approval: "Manual" }] },
      },
    };
  };
  // The first revision has no stable one: the canary batch waits for approval, nothing runs.
  await client.apply(DeploymentType, object("1"), kubectl);
  const waiting = await eventually("the rollout waiting for approval", async () => {
    const cr = await client.get<DeploymentCr>(DeploymentType, "web", "default");
    return cr?.status?.rollout?.phase === "Paused" || cr?.status?.rollout?.message.includes(
        "approv",
      )
      ? cr
      : undefined;
  });
  assert.equal(waiting.status?.rollout?.revision.number, 1);
  const types = (waiting.status?.conditions ?? []).map((c) => c.type).sort();
  // Accepted stays absent: a CR never refused has none (its field manager is another).
  assert.deepEqual(types, ["Complete", "Degraded", "Paused", "Progressing"]);
  assert.deepEqual(await fleet.desiredKeys(), []);

  // A restart resumes the same rollout: still revision 1, still waiting, nothing written.
  await first.stop();
  await fleet.startOperator({ source: { kind: "kube", client } });
  await sleep(500);
  const after = await client.get<DeploymentCr>(DeploymentType, "web", "default");
  assert.equal(after?.status?.rollout?.revision.number, 1);
  assert.equal(after?.status?.rollout?.startedAt, waiting.status?.rollout?.startedAt);
  assert.deepEqual(await fleet.desiredKeys(), []);

  // Back to Immediate: every device gets it, the rollout's status and conditions go.
  await client.apply(DeploymentType, kubectlObject("web", [{ name: "A", value: "1" }]), kubectl);
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web"]);
  await eventually("the rollout status gone", async () => {
    const cr = await client.get<DeploymentCr>(DeploymentType, "web", "default");
    const types = (cr?.status?.conditions ?? []).map((c) => c.type);
    return cr?.status?.rollout === undefined && types.length === 0 || undefined;
  });
});

Deno.test("Operator (kube source) keeps a Deployment's last valid generation on its devices when a kubectl update is refused, across a restart, and still deletes it", async () => {
  await using kube = await KubeFleet.start();
  const { client, fleet } = kube;
  const first = await fleet.startOperator({ source: { kind: "kube", client } });
  const kubectl = { fieldManager: "kubectl", force: true };
  const ref = { namespace: "default", name: "web" };

  await client.apply(DeploymentType, kubectlObject("web", [{ name: "A", value: "1" }]), kubectl);
  const valid = await fleet.waitForDesiredKeys(["a1.default.web"]);
  const kept = valid.get("a1.default.web") as DesiredState;
  assert.equal(kept.generation, 1);

  await client.apply(DeploymentType, kubectlObject("web", TOO_LONG), kubectl);
  const refused = await waitForAccepted(client, "web", "False", 2);
  assert.ok(refused.message.startsWith(`generation 2 refused: ${ENV_PROBLEM}`), refused.message);
  assert.ok(
    refused.message.endsWith("; devices keep generation 1 until a valid one is applied"),
    refused.message,
  );
  assert.deepEqual(await fleet.desired(), new Map([["a1.default.web", kept]]));

  // Another refused generation: devices still keep generation 1.
  const tooLongToo = [{ name: "BIG", value: "y".repeat(140_000) }];
  await client.apply(DeploymentType, kubectlObject("web", tooLongToo), kubectl);
  const refusedAgain = await waitForAccepted(client, "web", "False", 3);

  // The aggregate's own status writes leave the condition alone.
  await fleet.report("a1", ref, 1, "Running");
  const cr = await eventually("web's aggregate to show a1 running generation 1", async () => {
    const cr = await client.get<DeploymentCr>(DeploymentType, "web", "default");
    return cr?.status?.aggregate?.succeeded === 1 ? cr : undefined;
  });
  assert.equal(cr.status?.observedGeneration, 1);
  assert.deepEqual(cr.status?.conditions, [refusedAgain]);

  // A restart knows only the refused generation: the devices keep theirs, nothing is rewritten.
  await first.stop();
  const { log, lines } = capturingLogger();
  const second = await fleet.startOperator({ source: { kind: "kube", client }, log });
  await sleep(500);
  assert.deepEqual(await fleet.desired(), new Map([["a1.default.web", kept]]));
  const after = await client.get<DeploymentCr>(DeploymentType, "web", "default");
  assert.equal(after?.metadata.resourceVersion, cr.metadata.resourceVersion);
  assert.deepEqual(second.operator.stats, NO_WRITES);
  assert.ok(
    lines.some((l) => l.includes("default/web: its current generation is refused")),
    lines.join("\n"),
  );

  // Deleting it still removes its desired state and lets it go.
  await client.delete(DeploymentType, "web", { namespace: "default" });
  await fleet.waitForDesiredKeys([]);
  await eventually(
    "the refused CR to be gone",
    async () => (await client.get(DeploymentType, "web", "default")) === undefined || undefined,
  );
});

Deno.test("Operator writes exactly the diff when a deployment is retargeted or bumped", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  await fleet.device("b1", { site: "b" });
  const { operator } = await fleet.startOperator();
  const ref = { namespace: "default", name: "web" };
  await fleet.store.apply(deployment("web", SITE_A));
  await fleet.waitForStatus(ref, { generation: 1, matched: 2 });
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web"]);

  // site=a → site=b: the spec changed (generation 2), a1 and a2 lose the key, b1 gains it.
  let before = { ...operator.stats };
  const toB = deployment("web", SITE_B);
  assert.deepEqual(await fleet.store.apply(toB), { outcome: "configured", generation: 2 });
  // The status of a generation is written only after its desired state was synced.
  await fleet.waitForStatus(ref, { generation: 2, matched: 1 });
  const retargeted = await fleet.waitForDesiredKeys(["b1.default.web"]);
  assert.deepEqual(retargeted.get("b1.default.web"), desiredOf(toB, 2));
  assert.deepEqual(
    { ...statsDelta(operator.stats, before), statusWrites: 0 },
    { ...NO_WRITES, desiredPuts: 1, desiredDeletes: 2 },
  );

  // Same targets, new image (generation 3): one put per target, nothing deleted.
  before = { ...operator.stats };
  const bumped = deployment("web", SITE_B, { image: "registry.local/web:v2" });
  assert.deepEqual(await fleet.store.apply(bumped), { outcome: "configured", generation: 3 });
  await fleet.waitForStatus(ref, { generation: 3, matched: 1 });
  const updated = await fleet.waitForDesiredKeys(["b1.default.web"]);
  assert.deepEqual(updated.get("b1.default.web"), desiredOf(bumped, 3));
  assert.deepEqual(
    { ...statsDelta(operator.stats, before), statusWrites: 0 },
    { ...NO_WRITES, desiredPuts: 1 },
  );
});

Deno.test("Operator moves a deployment's keys when a device's labels change", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.device("a1", { site: "a" });
  await fleet.device("b1", { site: "b" });
  const { operator } = await fleet.startOperator();
  const web = deployment("web", SITE_A);
  await fleet.store.apply(web);
  await fleet.waitForDesiredKeys(["a1.default.web"]);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1 });

  // b1 is relabelled site=a in the registry: it gains the key.
  await fleet.label("b1", { site: "a" });
  const gained = await fleet.waitForDesiredKeys(["a1.default.web", "b1.default.web"]);
  assert.deepEqual(gained.get("b1.default.web"), desiredOf(web, 1));
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 2 });

  // a1 is relabelled site=b: it loses the key.
  await fleet.label("a1", { site: "b", zone: "north" });
  await fleet.waitForDesiredKeys(["b1.default.web"]);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1 });
  assert.equal(operator.stats.desiredPuts, 2);
  assert.equal(operator.stats.desiredDeletes, 1);
});

Deno.test("Operator targets on the label registry, never on what a device reports about itself", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.device("a1", { site: "a" });
  // b1 claims site=a and to be a1; nobody labelled it.
  await fleet.reportInfo("b1", { site: "a", [DEVICE_ID_LABEL]: "a1" });
  const { operator } = await fleet.startOperator();
  const web = deployment("web", SITE_A);
  await fleet.store.apply(web);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1 });
  assert.deepEqual(await fleet.desiredKeys(), ["a1.default.web"]);
  assert.deepEqual(operator.view.devices.get("b1"), { [DEVICE_ID_LABEL]: "b1" });

  // A registry entry naming another device id does not make it that device either.
  await fleet.label("b1", { zone: "north", [DEVICE_ID_LABEL]: "a1" });
  await eventually(
    "b1 has its registry labels",
    () => operator.view.devices.get("b1")?.zone === "north",
  );
  assert.equal(operator.view.devices.get("b1")?.[DEVICE_ID_LABEL], "b1");

  // A person labels it site=a: now it is targeted; removing the entry takes it back.
  await fleet.label("b1", { site: "a" });
  await fleet.waitForDesiredKeys(["a1.default.web", "b1.default.web"]);
  await fleet.label("b1", undefined);
  await fleet.waitForDesiredKeys(["a1.default.web"]);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1 });
});

Deno.test("Operator removes a deleted deployment's desired state and status, and only those", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  await fleet.startOperator();
  const web = deployment("web", SITE_A);
  const api = deployment("api", SITE_A);
  await fleet.store.apply(web);
  await fleet.store.apply(api);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 2 });
  await fleet.waitForStatus(refOf(api), { generation: 1, matched: 2 });
  await fleet.waitForDesiredKeys([
    "a1.default.api",
    "a1.default.web",
    "a2.default.api",
    "a2.default.web",
  ]);

  assert.equal(await fleet.store.delete(refOf(web)), true);
  await fleet.waitForDesiredKeys(["a1.default.api", "a2.default.api"]);
  await fleet.waitForNoStatus(refOf(web));
  assert.deepEqual([...(await fleet.statuses()).keys()], ["default.api"]);
});

Deno.test("Operator cleans up at cold start after deletions it missed and keys nobody wants", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  const web = deployment("web", SITE_A);
  const api = deployment("api", SITE_A);
  const first = await fleet.startOperator();
  await fleet.store.apply(web);
  await fleet.store.apply(api);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 2 });
  await fleet.waitForStatus(refOf(api), { generation: 1, matched: 2 });
  await first.stop();

  // While it is down: web is deleted, and someone writes a key for a deployment that never existed.
  assert.equal(await fleet.store.delete(refOf(web)), true);
  const ghost = deployment("ghost", SITE_A);
  await fleet.putRaw(
    Buckets.desiredState,
    keys.desiredState("a1", refOf(ghost)),
    JSON.stringify(desiredOf(ghost, 1)),
  );
  assert.deepEqual(await fleet.desiredKeys(), [
    "a1.default.api",
    "a1.default.ghost",
    "a1.default.web",
    "a2.default.api",
    "a2.default.web",
  ]);

  // `ready` means the first sync is done.
  const { operator } = await fleet.startOperator();
  assert.deepEqual(await fleet.desiredKeys(), ["a1.default.api", "a2.default.api"]);
  assert.equal(operator.stats.desiredDeletes, 3);
  assert.equal(operator.stats.desiredPuts, 0);
  assert.deepEqual([...(await fleet.statuses()).keys()], ["default.api"]);
});

Deno.test("Operator counts devices with stale or missing heartbeats as unreachable", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const staleAfterMs = 10_000;
  // The control plane's clock is three staleness periods past the heartbeat a2 left before
  // the operator started: the broker stored it that long ago.
  const clock = new FakeClock(Date.now() + 3 * staleAfterMs);
  await fleet.device("a1", { site: "a" }, null);
  await fleet.device("a2", { site: "a" });
  await fleet.device("a3", { site: "a" }, null);
  await fleet.startOperator({ staleAfterMs, clock });
  await fleet.heartbeat("a1", Date.now());
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  await fleet.store.apply(web);
  // a2's heartbeat is too old, a3 never sent one.
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, unreachable: 2 });

  await fleet.heartbeat("a2", Date.now());
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, unreachable: 1 });

  // Time passes without heartbeats: a1 and a2 go stale too.
  await clock.advance(staleAfterMs + 1);
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, unreachable: 3 });

  await fleet.heartbeat("a1", Date.now());
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, unreachable: 2 });
});

Deno.test("Operator counts a device that just joined as reachable until its heartbeat is overdue", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const staleAfterMs = 10_000;
  const clock = new FakeClock(Date.now());
  const reachability: string[] = [];
  await fleet.startOperator({
    staleAfterMs,
    clock,
    deviceSink: {
      deviceChanged: () => {},
      deviceRemoved: () => {},
      agentConflictChanged: () => {},
      reachabilityChanged: (id, reachable) => reachability.push(`${id}:${reachable}`),
    },
  });
  const web = deployment("web", SITE_A);
  await fleet.store.apply(web);
  // Its info arrives first, its heartbeat later (or never): writing its info is a sign of life.
  await fleet.device("a1", { site: "a" }, null);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1, unreachable: 0 });
  assert.deepEqual(reachability, ["a1:true"], "no unreachable blip on joining");

  await clock.advance(staleAfterMs + 1);
  await fleet.waitForStatus(refOf(web), { generation: 1, matched: 1, unreachable: 1 });
  assert.deepEqual(reachability, ["a1:true", "a1:false"]);
});

Deno.test("Operator keeps same-named deployments of two namespaces apart", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  await fleet.device("b1", { site: "b" });
  await fleet.startOperator();
  const webDefault = deployment("web", SITE_A);
  const webTeam = deployment("web", {
    matchExpressions: [{ key: "site", operator: "In", values: ["a", "b"] }],
  }, { namespace: "team-b", image: "registry.local/team-b-web:v1" });
  await fleet.store.apply(webDefault);
  await fleet.store.apply(webTeam);

  const desired = await fleet.waitForDesiredKeys([
    "a1.default.web",
    "a1.team-b.web",
    "a2.default.web",
    "a2.team-b.web",
    "b1.team-b.web",
  ]);
  assert.deepEqual(desired.get("a1.default.web"), desiredOf(webDefault, 1));
  assert.deepEqual(desired.get("a1.team-b.web"), desiredOf(webTeam, 1));
  assert.deepEqual(desired.get("b1.team-b.web"), desiredOf(webTeam, 1));

  await fleet.report("a1", refOf(webTeam), 1, "Running");
  await fleet.waitForStatus(refOf(webTeam), { generation: 1, matched: 3, succeeded: 1 });
  await fleet.waitForStatus(refOf(webDefault), { generation: 1, matched: 2 });
  const statuses = await fleet.statuses();
  assert.deepEqual([...statuses.keys()].sort(), ["default.web", "team-b.web"]);
  assert.equal(statuses.get("team-b.web")?.namespace, "team-b");
  assert.equal(statuses.get("default.web")?.namespace, "default");

  assert.equal(await fleet.store.delete(refOf(webTeam)), true);
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web"]);
  await fleet.waitForNoStatus(refOf(webTeam));
  assert.ok((await fleet.statuses()).has("default.web"));
});

Deno.test("Operator ignores malformed device info, reports and deployments", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const { log, lines } = capturingLogger();
  for (const id of ["a1", "a2"]) await fleet.device(id, { site: "a" });
  const running = await fleet.startOperator({ log });
  const { operator } = running;
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  await fleet.store.apply(web);
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web"]);
  await fleet.report("a1", ref, 1, "Running");
  await fleet.waitForStatus(ref, { generation: 1, matched: 2, succeeded: 1 });

  // device-info: not JSON, the wrong shape, another device's info under a1's key. Each
  // bucket's events arrive in order, so once the valid write after them took effect they
  // have been handled.
  await fleet.putRaw(Buckets.deviceInfo, keys.deviceInfo("a1"), "{not json");
  await fleet.putRaw(
    Buckets.deviceInfo,
    keys.deviceInfo("a1"),
    JSON.stringify({ deviceId: "a1", labels: "site=b" }),
  );
  const other = testDeviceInfo("b7", { site: "b" });
  await fleet.putRaw(Buckets.deviceInfo, keys.deviceInfo("a1"), JSON.stringify(other));
  await fleet.device("a3", { site: "a" });
  await fleet.waitForDesiredKeys(["a1.default.web", "a2.default.web", "a3.default.web"]);

  // device-state: garbage over a1's Running report keeps that report.
  await fleet.putRaw(Buckets.deviceState, keys.deviceState("a1", ref), "\u0000garbage");
  await fleet.putRaw(
    Buckets.deviceState,
    keys.deviceState("a2", ref),
    JSON.stringify({ deviceId: "a2", phase: "Sideways" }),
  );
  await fleet.report("a3", ref, 1, "Running");
  await fleet.waitForStatus(ref, { generation: 1, matched: 3, succeeded: 2 });

  // fleet-deployments: garbage, the wrong shape, a bad key, metadata naming another one.
  await fleet.putRaw(Buckets.deployments, "default.broken", "][");
  await fleet.putRaw(Buckets.deployments, "default.shapeless", JSON.stringify({ kind: "Pod" }));
  await fleet.putRaw(Buckets.deployments, "nodots", JSON.stringify(web));
  await fleet.putRaw(Buckets.deployments, "default.liar", JSON.stringify(web));
  const after = deployment("after", SITE_A);
  await fleet.store.apply(after);
  await fleet.waitForStatus(refOf(after), { generation: 1, matched: 3 });
  await fleet.waitForDesiredKeys([
    "a1.default.after",
    "a1.default.web",
    "a2.default.after",
    "a2.default.web",
    "a3.default.after",
    "a3.default.web",
  ]);
  assert.deepEqual([...(await fleet.statuses()).keys()].sort(), ["default.after", "default.web"]);

  // desired-state is the operator's own: a malformed value there is replaced.
  await fleet.putRaw(Buckets.desiredState, keys.desiredState("a2", ref), "{}");
  await eventually("a2's desired state rewritten", async () => {
    const value = (await fleet.desired()).get("a2.default.web");
    return JSON.stringify(value) === JSON.stringify(desiredOf(web, 1)) || undefined;
  });

  assert.equal(running.stopped, false);
  assert.equal(operator.stats.writeErrors, 0);
  const warned = (text: string) =>
    assert.ok(
      lines.some((line) => line.includes(text)),
      `expected a log line with ${JSON.stringify(text)}, got:\n${lines.join("\n")}`,
    );
  warned("unreadable device info");
  warned('names device "b7"');
  warned("unreadable report");
  warned("unreadable deployment");
  warned('Ignoring key "nodots"');
  warned('Ignoring deployment at key "default.liar"');
});

Deno.test("Operator flushes a deployment's aggregate at most once per flush interval", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const devices = ["d0", "d1", "d2", "d3", "d4"];
  for (const id of devices) await fleet.device(id, { site: "a" });
  const flushIntervalMs = 1000;
  const clock = new FakeClock(Date.now());
  const { operator } = await fleet.startOperator({ flushIntervalMs, clock });
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  await fleet.store.apply(web);
  await fleet.waitForStatus(ref, { generation: 1, matched: 5 });

  // 50 reports over 200 ms, each changing the aggregate; the last one per device is Running.
  const before = { ...operator.stats };
  const phases: Phase[] = ["Pending", "Failed", "Running"];
  const started = clock.monotonic();
  for (let i = 0; i < 50; i++) {
    const deviceId = devices[i % devices.length]!;
    const phase = i >= 45 ? "Running" : phases[i % phases.length]!;
    const lastError = phase === "Failed" ? `attempt ${i} failed` : null;
    const at = new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString();
    await fleet.report(deviceId, ref, 1, phase, lastError, at);
    await clock.advance(4);
  }
  const burstMs = clock.monotonic() - started;
  assert.ok(burstMs < flushIntervalMs, `the burst took ${burstMs} ms`);

  await fleet.waitForStatus(ref, { generation: 1, matched: 5, succeeded: 5, lastError: null });
  const writes = operator.stats.statusWrites - before.statusWrites;
  assert.ok(writes >= 1 && writes <= 2, `${writes} status writes for one burst`);
});

Deno.test("Operator keeps only reports of deployments targeted at their device, read at start or live", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.device("a1", { site: "a" });
  await fleet.device("b1", { site: "b" });
  const web = deployment("web", SITE_A);
  const ref = refOf(web);
  const madeUp = (name: string) => ({ namespace: "default", name });
  await fleet.store.apply(web);
  // Stored before the operator starts, so read before any target is known: a1's report on
  // web counts; b1's on web (not targeted at it) and on deployments that do not exist go.
  await fleet.report("a1", ref, 1, "Running");
  await fleet.report("b1", ref, 1, "Running");
  for (let i = 0; i < 20; i++) await fleet.report("b1", madeUp(`made-up-${i}`), 1, "Running");
  const { operator } = await fleet.startOperator();
  await fleet.waitForStatus(ref, { generation: 1, matched: 1, succeeded: 1 });
  const kept = () =>
    [...operator.view.states].flatMap(([r, devices]) =>
      [...devices.keys()].map((d) => `${r.namespace}/${r.name} ${d}`)
    );
  assert.deepEqual(kept(), ["default/web a1"]);

  // Live, the same; a1's later report shows b1's were read.
  await fleet.report("b1", madeUp("made-up-live"), 1, "Running");
  await fleet.report("b1", ref, 1, "Failed", "from b1");
  await fleet.report("a1", ref, 1, "Failed", "from a1");
  await fleet.waitForStatus(ref, { generation: 1, matched: 1, failed: 1 });
  assert.deepEqual(kept(), ["default/web a1"]);
});

Deno.test("NatsRevisions keeps a rollout's population of 30,000 devices in chunks beside the revisions, replaced whole and removed", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.startOperator();
  const store = new NatsRevisions(fleet.nc, silentLogger);
  const ref = { namespace: "default", name: "web" };
  const devices = (n: number, site: string) =>
    Array.from({ length: n }, (_, i) => ({ id: `dev-${i}`, labels: { site, ring: `r${i % 7}` } }));
  assert.equal(await store.load(ref), undefined);
  await store.save(ref, 3, devices(30_000, "north"));
  assert.deepEqual(await store.load(ref), { revision: 3, devices: devices(30_000, "north") });
  // A smaller population of the next rollout replaces it whole, no chunk of the old one left.
  await store.save(ref, 4, devices(10, "south"));
  assert.deepEqual(await store.load(ref), { revision: 4, devices: devices(10, "south") });
  assert.deepEqual(await store.list(ref), [], "no chunk is taken for a revision");
  await store.removePopulation(ref);
  assert.equal(await store.load(ref), undefined);
});

Deno.test("Operator keeps a deployment's last revisions, one per workload change, and fleet rollout history lists them", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  await fleet.startOperator({ revisionHistory: 2 });
  const revisions = new NatsRevisions(fleet.nc, silentLogger);
  const ref = { namespace: "default", name: "web" };
  const numbers = async () => (await revisions.list(ref)).map((r) => r.number);
  for (const [image, expected] of [["web:1", [1]], ["web:2", [1, 2]], ["web:3", [2, 3]]] as const) {
    await fleet.store.apply(deployment("web", SITE_A, { image: `registry.local/${image}` }));
    await eventually(
      `revisions ${expected.join(",")}`,
      async () => JSON.stringify(await numbers()) === JSON.stringify(expected) || undefined,
    );
  }
  // A re-apply changes nothing; a label-selector change is no new workload.
  await fleet.store.apply(deployment("web", SITE_B, { image: "registry.local/web:3" }));
  await fleet.waitForStatus(ref, { generation: 4, matched: 0 });
  assert.deepEqual(await numbers(), [2, 3]);
  const history = await revisions.list(ref);
  assert.equal(history[1]!.change, "main: registry.local/web:2 → registry.local/web:3");
  assert.equal(history[1]!.generation, 3);
  const text = renderRevisions(ref, history);
  assert.match(text, /^REVISION\s+CREATED\s+GENERATION\s+HASH\s+CHANGE$/m);
  assert.match(text, /^3 \(current\)\s+\S+\s+3\s+[0-9a-f]{16}\s+main: registry\.local\/web:2 → /m);

  await fleet.store.delete(ref);
  await eventually(
    "the revisions to go with the deployment",
    async () => (await numbers()).length === 0 || undefined,
  );
});

Deno.test("Operator (nats source) restarted while a batch waits for approval keeps the canary on the new revision", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const { first, ref } = await runningV1(fleet);
  const v2 = progressiveDeployment("registry.local/web:v2", {
    batches: [{ limit: 1 }, { limit: "50%", approval: "Manual" }],
    onFailure: "Pause",
  });
  await fleet.store.apply(v2);
  const canary = await oneCanary(fleet, ref, ":v2");
  await reportRevision(fleet, canary, v2, 2, "Running");
  await eventually("batch 2 waiting for approval", async () => {
    const rollout = (await fleet.statuses()).get(keys.deploymentStatus(ref))?.rollout;
    return rollout?.currentBatch === 2 || undefined;
  });
  await sleep(1_500);
  await first.stop();
  await fleet.startOperator();
  await sleep(1_000);
  assert.deepEqual(
    [...(await imagesOf(fleet, ref))].filter(([, i]) => i.endsWith(":v2")).map(([id]) => id),
    [canary],
  );
});

const LAB_IDS = ["a1", "a2", "a3", "a4"];

/** Four devices running `web` v1 (reported with its revision) under a started operator. */
async function runningV1(fleet: TestFleet) {
  for (const id of LAB_IDS) await fleet.device(id, { site: "a" });
  const first = await fleet.startOperator();
  const v1 = deployment("web", SITE_A);
  await fleet.store.apply(v1);
  await fleet.waitForDesiredKeys(LAB_IDS.map((id) => `${id}.default.web`));
  for (const id of LAB_IDS) await reportRevision(fleet, id, v1, 1, "Running");
  return { first, ref: refOf(v1), ids: LAB_IDS };
}

/** `web` at `image`, rolled out progressively as `rollout` says. */
function progressiveDeployment(image: string, rollout: Record<string, unknown>): Deployment {
  const d = deployment("web", SITE_A, { image });
  return Deployment.parse({
    ...d,
    spec: { ...d.spec, minReadySeconds: 1, rollout: { strategy: "Progressive", ...rollout } },
  });
}

/** The one device given the image ending in `tag`, once exactly one has it. */
async function oneCanary(fleet: TestFleet, ref: DeploymentRef, tag: string): Promise<string> {
  const on = await eventually(`one canary on ${tag}`, async () => {
    const ids = [...await imagesOf(fleet, ref)].filter(([, i]) => i.endsWith(tag)).map(([id]) =>
      id
    );
    return ids.length === 1 ? ids : undefined;
  });
  return on[0]!;
}

/** What each device's desired state holds for `ref`: deviceId → image. */
async function imagesOf(fleet: TestFleet, ref: DeploymentRef): Promise<Map<string, string>> {
  const images = new Map<string, string>();
  for (const [key, value] of await fleet.desired()) {
    const [deviceId, namespace, name] = key.split(".");
    if (namespace !== ref.namespace || name !== ref.name) continue;
    const services = (value as DesiredState).score.data as { services: { image: string }[] };
    images.set(deviceId!, services.services[0]!.image);
  }
  return images;
}

/** A device's report on `d`'s workload, as an agent with revisions writes it. */
async function reportRevision(
  fleet: TestFleet,
  deviceId: string,
  d: Deployment,
  generation: number,
  phase: "Running" | "Failed",
): Promise<void> {
  const ref = refOf(d);
  await fleet.putRaw(
    Buckets.deviceState,
    keys.deviceState(deviceId, ref),
    JSON.stringify({
      ...(await fleet.report(
        deviceId,
        ref,
        generation,
        phase,
        phase === "Failed" ? "pull failed" : null,
      )),
      revision: revisionHash(d.spec.score),
    }),
  );
}

Deno.test("Operator (nats source) rolls a Progressive deployment out canary first, and rolls a failed canary back", async () => {
  await using ns = await startNatsServer();
  await using fleet = await TestFleet.open(ns);
  const { first, ref, ids } = await runningV1(fleet);

  const progressive = (image: string) => progressiveDeployment(image, { batches: [{ limit: 1 }] });
  const v2 = progressive("registry.local/web:v2");
  await fleet.store.apply(v2);
  // One canary gets v2; the others keep v1 until it is healthy.
  const canary = await oneCanary(fleet, ref, ":v2");
  // A restarted operator resumes the same rollout: the same canary keeps v2, no other gets it.
  await first.stop();
  await fleet.startOperator();
  await sleep(500);
  assert.deepEqual(
    [...(await imagesOf(fleet, ref))].filter(([, i]) => i.endsWith(":v2")).map(([id]) => id),
    [canary],
  );
  const status = await fleet.waitForStatus(ref, { generation: 2, matched: 4 });
  assert.equal(status.rollout?.revision.number, 2);
  assert.equal(status.rollout?.stable?.number, 1);
  assert.equal(status.rollout?.currentBatch, 1);
  await reportRevision(fleet, canary, v2, 2, "Running");
  await eventually("every device on v2", async () => {
    const images = [...(await imagesOf(fleet, ref)).values()];
    return images.length === 4 && images.every((i) => i.endsWith(":v2")) || undefined;
  });
  for (const id of ids) await reportRevision(fleet, id, v2, 2, "Running");
  await eventually("the rollout Complete", async () => {
    const rollout = (await fleet.statuses()).get(keys.deploymentStatus(ref))?.rollout;
    return rollout?.phase === "Complete" || undefined;
  });

  // v3's canary fails: it goes back to v2, the others never leave it.
  const v3 = progressive("registry.local/web:v3-broken");
  await fleet.store.apply(v3);
  const badCanary = await oneCanary(fleet, ref, ":v3-broken");
  await reportRevision(fleet, badCanary, v3, 3, "Failed");
  const rolledBack = await eventually("the rollout RolledBack", async () => {
    const images = await imagesOf(fleet, ref);
    const rollout = (await fleet.statuses()).get(keys.deploymentStatus(ref))?.rollout;
    const back = [...images.values()].every((i) => i.endsWith(":v2"));
    if (back && rollout?.phase === "RollingBack") {
      await reportRevision(fleet, badCanary, v2, 2, "Running");
    }
    return back && rollout?.phase === "RolledBack" ? rollout : undefined;
  });
  assert.equal(rolledBack.failure?.batch, 1);
  assert.match(rolledBack.failure?.message ?? "", /pull failed/);
  assert.equal(rolledBack.stable?.number, 2);
});
