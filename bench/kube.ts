/**
 * Control-plane benchmark of the kube source: a real kube-apiserver with etcd, a real
 * nats-server, the operator as a child `fleet operator run --source kube`, and N simulated
 * devices (no podman). `deno task bench:kube --devices N --deployments M --rate R --duration D`
 * (`deno task bench:kube -- ...`). Prints progress lines (`# `), then LAST one line of figures.
 *
 * Phases:
 * 1. Registration: every device puts its device-info and a first heartbeat; time until all N
 *    Device objects exist in the API server, and until all are `Reachable=True` (an informer
 *    on `devices.fleet.nationtech.io`). Then the whole fleet beats once per 30 s.
 * 2. Fan-out: M Deployment objects by server-side apply (as `fleet apply deployment --target
 *    kube`); time until every desired-state key is in NATS, and until every Deployment's
 *    `status.aggregate` counts its matched devices.
 * 3. State writes at `--rate` for `--duration`: a random matched (device, deployment) pair
 *    moves to its next phase. Each write carries a `w:<index>` tag in `lastError` and a
 *    strictly increasing `lastEventAt`, so the aggregate's `lastError` (read from the
 *    Deployment objects through an informer) names the newest write folded in: latency of each
 *    write, exactly. At the end every aggregate must equal the simulator's truth.
 * 4. Reachability: the last `--unreachable-percent` of the devices send one final heartbeat
 *    together and then stop; time until each of their Device objects says `Reachable=False`
 *    (measured from the moment their heartbeat crossed `--stale-after`, which is passed to the
 *    operator), no other device may flip, and every aggregate's `unreachable` must count them.
 *
 * The simulated fleet (labels, selectors, truth) is bench/_sim_fleet.ts, as for bench:fleet.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { Condition, REACHABLE } from "../crd/device_resource.ts";
import {
  Aggregate,
  aggregateEquals,
  Buckets,
  type DeploymentState,
  type DeviceInfo,
  type Heartbeat,
  keys,
  parseKey,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { untilAborted } from "../adapters/timers.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { informer, KubeClient } from "../adapters/kube/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, noCredentials, openBucket, watchBucket } from "../adapters/nats/mod.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { DeploymentType, DeviceType, installCrds } from "../operator/mod.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { findPid, type ProcSample, procSample } from "./_proc.ts";
import { spawnOperator } from "./_operator_process.ts";
import { KvPipeline } from "./_kv_pipeline.ts";
import {
  deploymentName,
  deviceId,
  deviceLabels,
  fmt,
  matchedDevices,
  percentile,
  selectorOf,
} from "./_sim_fleet.ts";

/** Deployments live in `default`: the test API server runs no namespace controller. */
const NAMESPACE = "default";
/** Puts in flight per NATS connection. */
const WINDOW = 256;
const HEARTBEAT_PERIOD_MS = 30_000;
/** The operator flushes each aggregate at most once a second; one more, then compare. */
const SETTLE_MS = 1_500;

export interface KubeBenchOptions {
  devices: number;
  deployments: number;
  /** State writes per second. */
  rate: number;
  durationSeconds: number;
  /** NATS connections the simulated devices share. */
  connections: number;
  /** Passed to the operator as `--stale-after`; must exceed the 30 s heartbeat period. */
  staleAfterSeconds: number;
  /** Share of the fleet that stops its heartbeats in the reachability phase. */
  unreachablePercent: number;
  /** Each wait (Device objects, fan-out, convergence, flips) gives up after this. */
  timeoutSeconds: number;
  log: Logger;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!cond() && performance.now() < deadline) await sleep(20);
  return cond();
}

const PROCESSES = ["operator", "kube-apiserver", "etcd", "nats-server", "simulator"] as const;
type ProcessName = typeof PROCESSES[number];
/** /proc samples of every process at one moment (`at`: performance.now()). */
type Samples = Partial<Record<ProcessName, ProcSample>> & { at: number };

/** CPU use between two samples, in % of one core, per process. */
function cpuPercents(a: Samples, b: Samples): Record<ProcessName, number> {
  const out = {} as Record<ProcessName, number>;
  for (const p of PROCESSES) {
    const x = a[p];
    const y = b[p];
    // Ticks are 1/100 s: ticks per second is already a percentage of one core.
    out[p] = x && y ? (y.cpuTicks - x.cpuTicks) / ((b.at - a.at) / 1000) : NaN;
  }
  return out;
}

/** N devices over a few NATS connections: device i writes on connection i % C. */
class Simulator {
  readonly #windows: KvPipeline[];
  /** Devices whose heartbeats stopped (the reachability phase). */
  readonly silenced = new Set<number>();

  constructor(conns: NatsConnection[]) {
    this.#windows = conns.map((nc) => new KvPipeline(nc, WINDOW));
  }

  put(i: number, bucket: string, key: string, value: string): Promise<void> {
    return this.#windows[i % this.#windows.length]!.put(bucket, key, value);
  }

  heartbeat(i: number, at = Date.now()): Promise<void> {
    const beat: Heartbeat = { deviceId: deviceId(i), at };
    return this.put(
      i,
      Buckets.deviceHeartbeat,
      keys.heartbeat(beat.deviceId),
      JSON.stringify(beat),
    );
  }

  async drain(): Promise<void> {
    for (const w of this.#windows) await w.drain();
  }

  get errors(): number {
    return this.#windows.reduce((s, w) => s + w.errors, 0);
  }

  get firstError(): string | undefined {
    return this.#windows.find((w) => w.firstError)?.firstError;
  }

  /** The whole fleet (minus the silenced) once per period, spread evenly over it. */
  async beat(n: number, signal: AbortSignal): Promise<void> {
    const perTick = Math.max(1, Math.ceil(n / (HEARTBEAT_PERIOD_MS / 100)));
    let next = 0;
    while (!signal.aborted) {
      await sleep(100);
      for (let k = 0; k < perTick; k++, next = (next + 1) % n) {
        if (!this.silenced.has(next)) await this.heartbeat(next);
      }
    }
  }
}

const DeviceObject = z.object({
  metadata: z.object({ name: z.string() }),
  status: z.object({ conditions: z.array(Condition).optional() }).optional(),
});

/** What the API server says about the Device objects, through an informer. */
class DeviceView {
  readonly exists = new Set<string>();
  readonly reachable = new Set<string>();
  /** deviceId → wall-clock ms when its Reachable=False was first seen. */
  readonly unreachableSeenAt = new Map<string, number>();
  ready!: Promise<void>;

  follow(client: KubeClient, signal: AbortSignal, log: Logger): Promise<void> {
    let resolve!: () => void;
    this.ready = new Promise((r) => resolve = r);
    return (async () => {
      const events = informer(client, DeviceType, { signal, logger: log });
      // An informer blocked in a stream read would hold the shutdown up to its watch timeout.
      for await (const e of untilAborted(events, signal)) {
        if (e.type === "ready") {
          resolve();
          continue;
        }
        const parsed = DeviceObject.safeParse(e.object);
        if (!parsed.success) continue;
        const name = parsed.data.metadata.name;
        if (e.type === "delete") {
          this.exists.delete(name);
          this.reachable.delete(name);
          continue;
        }
        this.exists.add(name);
        const condition = parsed.data.status?.conditions?.find((c) => c.type === REACHABLE);
        if (condition?.status === "True") this.reachable.add(name);
        else this.reachable.delete(name);
        if (condition?.status === "False" && !this.unreachableSeenAt.has(name)) {
          this.unreachableSeenAt.set(name, Date.now());
        }
      }
    })();
  }
}

const DeploymentStatusView = z.object({
  metadata: z.object({ name: z.string() }),
  status: z.object({ observedGeneration: z.number().optional(), aggregate: Aggregate.optional() })
    .optional(),
});

/** The Deployment objects' `status.aggregate`, through an informer; measures write latency. */
class StatusView {
  readonly aggregates = new Map<number, Aggregate>();
  /** Per deployment: send time of each state write, by its per-deployment index. */
  readonly writeTimes: number[][];
  /** Per deployment: how many writes the latest aggregate includes. */
  readonly included: number[];
  readonly latencies: number[] = [];
  lastChangeAt = performance.now();

  constructor(m: number) {
    this.writeTimes = Array.from({ length: m }, () => []);
    this.included = new Array<number>(m).fill(0);
  }

  get totalIncluded(): number {
    return this.included.reduce((s, x) => s + x, 0);
  }

  follow(client: KubeClient, signal: AbortSignal, log: Logger): Promise<void> {
    return (async () => {
      const events = informer(client, DeploymentType, { signal, logger: log });
      for await (const e of untilAborted(events, signal)) {
        if (e.type !== "upsert") continue;
        const now = performance.now();
        const parsed = DeploymentStatusView.safeParse(e.object);
        const aggregate = parsed.data?.status?.aggregate;
        const j = Number(/^d-(\d+)$/.exec(parsed.data?.metadata.name ?? "")?.[1] ?? NaN);
        if (!aggregate || !Number.isInteger(j) || j >= this.included.length) continue;
        this.aggregates.set(j, aggregate);
        this.lastChangeAt = now;
        const tag = aggregate.lastError?.message;
        const upTo = tag?.startsWith("w:") ? Number(tag.slice(2)) + 1 : 0;
        for (let w = this.included[j]!; w < upTo; w++) {
          this.latencies.push(now - this.writeTimes[j]![w]!);
        }
        if (upTo > this.included[j]!) this.included[j] = upTo;
      }
    })();
  }
}

/** Runs the benchmark; true when every check held. */
export async function runKubeBench(o: KubeBenchOptions): Promise<boolean> {
  const { log } = o;
  const n = o.devices;
  const m = o.deployments;
  const timeoutMs = o.timeoutSeconds * 1000;
  const say = (text: string) => printLine(`# ${text}`);

  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  await installCrds(client, log);
  await using nats = await startNatsServer();
  const pids: Partial<Record<ProcessName, number | "self" | undefined>> = {
    "kube-apiserver": findPid("kube-apiserver", kube.dir),
    etcd: findPid("etcd", kube.dir),
    "nats-server": findPid("nats-server", nats.storeDir),
    simulator: "self",
  };
  say(
    `kube-apiserver ${kube.url} (pid ${pids["kube-apiserver"] ?? "?"}, etcd pid ${
      pids.etcd ?? "?"
    }, up in ${(kube.startupMs / 1000).toFixed(1)} s), nats ${nats.url}; CRDs installed`,
  );

  const op = spawnOperator({
    operatorArgs: [
      "--source",
      "kube",
      "--kubeconfig",
      kube.kubeconfigPath,
      "--nats-url",
      nats.url,
      "--stale-after",
      String(o.staleAfterSeconds),
    ],
    log,
  });
  pids.operator = op.pid;
  const sampleAll = (): Samples => {
    const out: Samples = { at: performance.now() };
    for (const p of PROCESSES) {
      const pid = pids[p];
      const s = pid === undefined ? undefined : procSample(pid);
      if (s) out[p] = s;
    }
    return out;
  };
  let operatorPeakKb = 0;
  const sampler = setInterval(() => {
    operatorPeakKb = Math.max(operatorPeakKb, procSample(op.pid)?.rssKb ?? 0);
  }, 200);

  const stop = new AbortController();
  const tasks: Promise<void>[] = [];
  const conns: NatsConnection[] = [];
  let ok = false;
  try {
    const opReady = await Promise.race([
      op.ready.then(() => true),
      sleep(timeoutMs).then(() => false),
    ]);
    if (!opReady) throw new Error(`The operator was not ready within ${o.timeoutSeconds} s`);
    say(`operator ready (pid ${op.pid}, --source kube --stale-after ${o.staleAfterSeconds})`);

    // The operator created the buckets; the simulator binds to them.
    for (let c = 0; c <= o.connections; c++) {
      conns.push(
        await connectNats({
          servers: [nats.url],
          credentials: noCredentials(),
          name: `bench-kube-${c}`,
          logger: log,
        }),
      );
    }
    const watcher = conns[o.connections]!;
    // The operator creates the buckets; the simulator's puts need them to exist.
    for (const b of [Buckets.deviceInfo, Buckets.deviceState, Buckets.deviceHeartbeat]) {
      await openBucket(conns[0]!, b);
    }
    const sim = new Simulator(conns.slice(0, o.connections));

    const devices = new DeviceView();
    tasks.push(devices.follow(client, stop.signal, log));
    const statuses = new StatusView(m);
    tasks.push(statuses.follow(client, stop.signal, log));
    const desiredKeys = new Set<string>();
    tasks.push((async () => {
      const watch = { nc: watcher, bucket: Buckets.desiredState, logger: log, signal: stop.signal };
      for await (const e of watchBucket(watch)) {
        if (e.type === "put" && parseKey.desiredState(e.key)) desiredKeys.add(e.key);
        else if (e.type === "delete") desiredKeys.delete(e.key);
      }
    })());
    await devices.ready;

    // 1. Registration.
    const s0 = sampleAll();
    const regStart = performance.now();
    for (let i = 0; i < n; i++) {
      const info: DeviceInfo = {
        deviceId: deviceId(i),
        labels: deviceLabels(i, m),
        inventory: {
          hostname: deviceId(i),
          arch: "arm64",
          os: "linux",
          kernel: "6.6",
          cpuCores: 4,
          memoryMb: 8192,
          agentVersion: "bench",
        },
        updatedAt: new Date().toISOString(),
      };
      await sim.put(i, Buckets.deviceInfo, keys.deviceInfo(info.deviceId), JSON.stringify(info));
      await sim.heartbeat(i);
    }
    await sim.drain();
    const registerS = (performance.now() - regStart) / 1000;
    say(`${n} devices put their info and a first heartbeat in ${registerS.toFixed(2)} s`);
    tasks.push(sim.beat(n, stop.signal));
    // Progress every 10 s: at 10,000 devices this phase takes minutes.
    const progress = setInterval(() => {
      say(
        `  ${((performance.now() - regStart) / 1000).toFixed(0)} s: ${devices.exists.size} ` +
          `Device objects, ${devices.reachable.size} Reachable=True`,
      );
    }, 10_000);
    const allExist = await waitUntil(() => devices.exists.size >= n, timeoutMs);
    const deviceCrsS = (performance.now() - regStart) / 1000;
    const allReachable = await waitUntil(() => devices.reachable.size >= n, timeoutMs);
    const reachableCrsS = (performance.now() - regStart) / 1000;
    clearInterval(progress);
    const s1 = sampleAll();
    const regCpu = cpuPercents(s0, s1);
    say(
      `Device objects: ${devices.exists.size}/${n} exist after ${deviceCrsS.toFixed(2)} s` +
        `${allExist ? "" : " (TIMED OUT)"}, ${devices.reachable.size}/${n} Reachable=True after ` +
        `${reachableCrsS.toFixed(2)} s${allReachable ? "" : " (TIMED OUT)"} ` +
        `(${fmt(n / reachableCrsS)} devices/s, 2 API writes each)`,
    );
    say(`cpu % of a core during registration: ${describeCpu(regCpu)}`);

    // 2. Fan-out: M Deployment objects, as `fleet apply deployment --target kube` applies them.
    const matched = Array.from({ length: m }, (_, j) => matchedDevices(j, n, m));
    const expectedDesired = matched.reduce((s, d) => s + d.length, 0);
    const store = new KubeDeploymentStore(client, log);
    const fanStart = performance.now();
    await Promise.all(
      Array.from({ length: m }, (_, j) =>
        store.apply(singleServiceDeployment({
          name: deploymentName(j),
          namespace: NAMESPACE,
          image: "localhost/bench:1",
          selector: selectorOf(j),
        }))),
    );
    const appliedS = (performance.now() - fanStart) / 1000;
    const fannedOut = await waitUntil(() => desiredKeys.size >= expectedDesired, timeoutMs);
    const fanOutS = (performance.now() - fanStart) / 1000;
    const countsIn = await waitUntil(
      () => matched.every((d, j) => statuses.aggregates.get(j)?.matchedDeviceCount === d.length),
      timeoutMs,
    );
    const statusS = (performance.now() - fanStart) / 1000;
    const s2 = sampleAll();
    say(
      `fan-out: ${m} Deployment objects applied in ${appliedS.toFixed(2)} s; ` +
        `${desiredKeys.size}/${expectedDesired} desired-state keys in ${fanOutS.toFixed(2)} s` +
        `${fannedOut ? "" : " (TIMED OUT)"}; every status.aggregate counts its devices after ` +
        `${statusS.toFixed(2)} s${countsIn ? "" : " (TIMED OUT)"}`,
    );

    // 3. State writes at the rate, for the duration.
    type Sim = { phase: DeploymentState["phase"]; tag: string; at: string };
    const truth: Map<number, Sim>[] = Array.from({ length: m }, () => new Map());
    const pairs = matched.flatMap((devs, j) => devs.map((i) => [i, j] as const));
    let seq = 0;
    const base = Date.now();
    const writeStart = performance.now();
    const durationMs = o.durationSeconds * 1000;
    while (performance.now() - writeStart < durationMs) {
      const due = Math.floor((performance.now() - writeStart) * o.rate / 1000);
      if (seq >= due) {
        await sleep(1);
        continue;
      }
      for (; seq < due && pairs.length > 0; seq++) {
        const [i, j] = pairs[Math.floor(Math.random() * pairs.length)]!;
        const previous = truth[j]!.get(i)?.phase;
        const phase = previous === undefined
          ? "Pending"
          : previous === "Running"
          ? (seq % 3 === 0 ? "Failed" : "Pending")
          : "Running";
        const tag = `w:${statuses.writeTimes[j]!.length}`;
        // Strictly increasing, so the newest write is the aggregate's lastError.
        const at = new Date(base + seq).toISOString();
        truth[j]!.set(i, { phase, tag, at });
        const state: DeploymentState = {
          deviceId: deviceId(i),
          namespace: NAMESPACE,
          deployment: deploymentName(j),
          generation: 1,
          phase,
          lastError: tag,
          lastEventAt: at,
        };
        statuses.writeTimes[j]!.push(performance.now());
        await sim.put(
          i,
          Buckets.deviceState,
          keys.deviceState(state.deviceId, { namespace: NAMESPACE, name: state.deployment }),
          JSON.stringify(state),
        );
      }
    }
    await sim.drain();
    const writeEnd = performance.now();
    const writes = seq;
    const sentRate = writes / ((writeEnd - writeStart) / 1000);
    say(`wrote ${writes} states in ${((writeEnd - writeStart) / 1000).toFixed(2)} s`);
    const converged = await waitUntil(() => statuses.totalIncluded >= writes, timeoutMs);
    const processedAt = statuses.lastChangeAt;
    const s3 = sampleAll();
    const writeMs = processedAt - writeStart;
    const writeCpu = cpuPercents(s2, s3);
    const processedRate = statuses.totalIncluded /
      (Math.max(writeMs, writeEnd - writeStart) / 1000);
    await sleep(SETTLE_MS);
    const exactness = (unreachable: (j: number) => number) => {
      let exact = 0;
      const mismatches: string[] = [];
      for (let j = 0; j < m; j++) {
        const want: Aggregate = {
          matchedDeviceCount: matched[j]!.length,
          succeeded: 0,
          failed: 0,
          pending: 0,
          unreachable: unreachable(j),
          lastError: null,
        };
        let newest: [number, Sim] | undefined;
        for (const [i, s] of truth[j]!) {
          if (s.phase === "Running") want.succeeded++;
          if (s.phase === "Failed") want.failed++;
          if (!newest || s.at > newest[1].at) newest = [i, s];
        }
        want.pending = want.matchedDeviceCount - want.succeeded - want.failed;
        if (newest) {
          want.lastError = {
            deviceId: deviceId(newest[0]),
            message: newest[1].tag,
            at: newest[1].at,
          };
        }
        const got = statuses.aggregates.get(j);
        if (got && aggregateEquals(got, want)) exact++;
        else if (mismatches.length < 3) {
          mismatches.push(
            `${deploymentName(j)} want ${JSON.stringify(want)} got ${JSON.stringify(got)}`,
          );
        }
      }
      return { exact, mismatches };
    };
    const afterWrites = exactness(() => 0);
    for (const line of afterWrites.mismatches) say(`MISMATCH ${line}`);
    statuses.latencies.sort((a, b) => a - b);
    say(
      `convergence: ${statuses.totalIncluded}/${writes} writes in the aggregates` +
        `${converged ? "" : " (TIMED OUT)"}, ${fmt(processedRate)}/s; latency p50 ` +
        `${fmt(percentile(statuses.latencies, 0.5))} ms, p99 ` +
        `${fmt(percentile(statuses.latencies, 0.99))} ms; exact ${afterWrites.exact}/${m}`,
    );
    say(`cpu % of a core during writes: ${describeCpu(writeCpu)}`);

    // 4. Reachability: a slice of the fleet beats once more, together, then falls silent.
    const silentCount = Math.round(n * o.unreachablePercent / 100);
    // A device whose info reaches the operator before its first heartbeat is briefly
    // Reachable=False (NeverSeen) at registration; only flips from here on count.
    const transientFalse = devices.unreachableSeenAt.size;
    devices.unreachableSeenAt.clear();
    for (let i = n - silentCount; i < n; i++) sim.silenced.add(i);
    const lastBeat = Date.now();
    for (const i of sim.silenced) await sim.heartbeat(i, lastBeat);
    await sim.drain();
    const threshold = lastBeat + o.staleAfterSeconds * 1000;
    const silencedNames = new Set([...sim.silenced].map(deviceId));
    const flipped = () => [...silencedNames].filter((d) => devices.unreachableSeenAt.has(d)).length;
    say(
      `${silentCount} devices stopped their heartbeats; they cross --stale-after in ` +
        `${o.staleAfterSeconds} s (${transientFalse} devices were briefly Reachable=False ` +
        `while registering)`,
    );
    const s4 = sampleAll();
    const allFlipped = await waitUntil(
      () => flipped() >= silentCount,
      o.staleAfterSeconds * 1000 + timeoutMs,
    );
    const s5 = sampleAll();
    const lags = [...silencedNames].flatMap((d) => {
      const at = devices.unreachableSeenAt.get(d);
      return at === undefined ? [] : [at - threshold];
    }).sort((a, b) => a - b);
    const falseFlips = [...devices.unreachableSeenAt.keys()].filter((d) => !silencedNames.has(d));
    const silentOf = matched.map((devs) => devs.filter((i) => sim.silenced.has(i)).length);
    const unreachableIn = await waitUntil(
      () => silentOf.every((k, j) => statuses.aggregates.get(j)?.unreachable === k),
      timeoutMs,
    );
    await sleep(SETTLE_MS);
    const afterSilence = exactness((j) => silentOf[j]!);
    for (const line of afterSilence.mismatches) say(`MISMATCH (after silence) ${line}`);
    const flipCpu = cpuPercents(s4, s5);
    say(
      `reachability: ${flipped()}/${silentCount} Device objects Reachable=False` +
        `${allFlipped ? "" : " (TIMED OUT)"}; after the threshold p50 ${
          fmt(percentile(lags, 0.5))
        } ms, ` +
        `last ${
          fmt(lags[lags.length - 1] ?? NaN)
        } ms; other devices flipped: ${falseFlips.length}` +
        (falseFlips.length ? ` e.g. ${falseFlips.slice(0, 3).join(", ")}` : "") +
        `; aggregates count them ${unreachableIn ? "" : "NOT "}(exact ${afterSilence.exact}/${m})`,
    );
    say(`cpu % of a core from last heartbeat to all flipped: ${describeCpu(flipCpu)}`);

    stop.abort();
    clearInterval(sampler);
    const end = sampleAll();
    operatorPeakKb = Math.max(operatorPeakKb, end.operator?.hwmKb ?? 0);
    const putErrors = sim.errors;
    if (putErrors > 0) say(`put errors: ${putErrors}, first: ${sim.firstError}`);
    const opErrors = op.warnings.filter((w) => /Could not/.test(w)).length;
    if (op.warnings.length > 0) {
      say(`operator warnings: ${op.warnings.length} (${opErrors} failed writes)`);
    }
    ok = allExist && allReachable && fannedOut && countsIn && converged &&
      afterWrites.exact === m && allFlipped && falseFlips.length === 0 && unreachableIn &&
      afterSilence.exact === m && putErrors === 0 && opErrors === 0;
    const mb = (kb: number | undefined) => fmt((kb ?? NaN) / 1024, 1);
    printLine(
      `kube bench: devices=${n} deployments=${m} connections=${o.connections} ` +
        `register_s=${fmt(registerS, 2)} device_crs_s=${fmt(deviceCrsS, 2)} ` +
        `reachable_crs_s=${fmt(reachableCrsS, 2)} devices_per_s=${fmt(n / reachableCrsS)} ` +
        `desired_keys=${expectedDesired} fanout_s=${fmt(fanOutS, 2)} status_s=${fmt(statusS, 2)} ` +
        `state_writes=${writes} sent_per_s=${fmt(sentRate)} processed_per_s=${
          fmt(processedRate)
        } ` +
        `latency_p50_ms=${fmt(percentile(statuses.latencies, 0.5))} ` +
        `latency_p99_ms=${
          fmt(percentile(statuses.latencies, 0.99))
        } exact=${afterWrites.exact}/${m} ` +
        `unreachable=${flipped()}/${silentCount} stale_after_s=${o.staleAfterSeconds} ` +
        `flip_lag_p50_ms=${fmt(percentile(lags, 0.5))} ` +
        `flip_lag_max_ms=${
          fmt(lags[lags.length - 1] ?? NaN)
        } false_flips=${falseFlips.length} registering_false=${transientFalse} ` +
        `unreachable_exact=${afterSilence.exact}/${m} errors=${putErrors + opErrors} ` +
        `operator_peak_rss_mb=${mb(operatorPeakKb)} ` +
        `apiserver_peak_rss_mb=${mb(end["kube-apiserver"]?.hwmKb)} ` +
        `etcd_peak_rss_mb=${mb(end.etcd?.hwmKb)} ` +
        `reg_cpu_pct=operator:${fmt(regCpu.operator)},apiserver:${
          fmt(regCpu["kube-apiserver"])
        },etcd:${fmt(regCpu.etcd)} ` +
        `write_cpu_pct=operator:${fmt(writeCpu.operator)},apiserver:${
          fmt(writeCpu["kube-apiserver"])
        },etcd:${fmt(writeCpu.etcd)} ` +
        `result=${ok ? "ok" : "FAILED"}`,
    );
    return ok;
  } finally {
    stop.abort();
    clearInterval(sampler);
    await op.stop();
    await Promise.allSettled(tasks);
    for (const nc of conns) await nc.close();
  }
}

function describeCpu(cpu: Record<ProcessName, number>): string {
  return PROCESSES.map((p) => `${p} ${fmt(cpu[p])}`).join(", ");
}
