/**
 * Control-plane benchmark: a real operator (nats source) against N simulated devices, no
 * podman. `deno task bench:fleet --devices N --deployments M --rate R --duration D`
 * (`deno task bench:fleet -- ...`). Prints progress, then LAST one line of figures.
 *
 * How it simulates:
 * - Device i has labels `group=g<i % M>` and `half=a|b` (`a` when ⌊i / M⌋ is even), plus
 *   the device-id label. Deployment j selects `group=g<j>`; when j % 4 == 1 it also needs
 *   `half=a`, when j % 4 == 3 `half notin (a)`: the deployments split the fleet by labels.
 * - Devices map onto `--connections` NATS connections round-robin (device i on connection
 *   i % C); every connection pipelines its puts (at most `WINDOW` in flight each) as plain
 *   JetStream publishes acked on one inbox ({@link KvPipeline}). On a cluster (`--cluster`)
 *   connection c prefers server c % 3.
 * - Heartbeats: every device once at registration, then the whole fleet once per 30 s
 *   (N/30 puts per second on top of the state writes).
 * - State writes: at `--rate` per second, a random (device, deployment) pair the selector
 *   matches moves to its next phase (Pending → Running → Failed → Running ...). Every
 *   report carries a unique `lastError` tag and a strictly increasing `lastEventAt`, so the
 *   aggregate's `lastError` names the newest write the operator has folded in: that is how
 *   the convergence latency of each write is measured, exactly.
 * - The raw ceiling: before the operator starts, one bare client pipelines KV puts of the
 *   same size the same way into a scratch bucket (same replicas) while a second connection
 *   watches it, on the same server(s).
 * - After the run, two more phases (each one figures line, and in the last line):
 *   retarget: a deployment `retarget` selecting `half=a` switches to `half notin (a)`; the
 *   desired-state watch must see exactly one put per newly matched device and one delete per
 *   no longer matched one, and nothing else (also during 2 s after), else the run fails.
 *   Cold start: the operator is stopped and a new one started; time until it has read the
 *   fleet (its "Read the fleet's current state" log line), its peak RSS, and it must write
 *   nothing to desired-state or fleet-deployment-status until 3 s after ready, else the run
 *   fails. State writes are over by then; heartbeats go on.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type Aggregate,
  BUCKET_HISTORY,
  Buckets,
  type DeploymentState,
  DeploymentStatus,
  type DeviceInfo,
  keys,
  type LabelSelector,
  parseJsonWith,
  parseKey,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import {
  connectNats,
  ensureBucket,
  noCredentials,
  watchBucket,
  type WatchEvent,
} from "../adapters/nats/mod.ts";
import { startNatsCluster } from "../testing/nats_cluster.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { createOperator } from "../operator/mod.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { findPid, type ProcSample, procSample } from "./_proc.ts";
import { spawnOperator } from "./_operator_process.ts";
import {
  deploymentName,
  deviceId,
  deviceLabels,
  fmt,
  matchedDevices,
  percentile,
  selectorOf,
} from "./_sim_fleet.ts";
import { KvPipeline } from "./_kv_pipeline.ts";

const NAMESPACE = "bench";
/** Puts in flight per connection. */
const WINDOW = 512;
const HEARTBEAT_PERIOD_MS = 30_000;
const RAW_SECONDS = 5;
/** After the retarget diff is in, how long to watch for writes beyond it. */
const RETARGET_SETTLE_MS = 2_000;
/** After a restarted operator is ready, how long to watch for (forbidden) writes. */
const RESTART_SETTLE_MS = 3_000;

export interface FleetBenchOptions {
  devices: number;
  deployments: number;
  /** State writes per second; 0 = as fast as the pipeline allows. */
  rate: number;
  durationSeconds: number;
  connections: number;
  /** Attach to these servers (comma-separated) instead of starting any. */
  natsUrl?: string | undefined;
  /** Start a 3-server cluster instead of one server. */
  cluster: boolean;
  /** Replicas of the fleet buckets (3 on a cluster). */
  replicas: number;
  /** `process`: `deno run -A main.ts operator run` (RSS/CPU from /proc); `inline`: same process. */
  operator: "process" | "inline";
  /** Writes a V8 CPU profile of the operator process into this directory. */
  cpuProfDir?: string | undefined;
  /** Seconds to wait for fan-out and for quiescence before giving up. */
  timeoutSeconds: number;
  log: Logger;
}

/** The servers' CPU ticks summed (a cluster counts as one), undefined when none is ours. */
function natsSample(pids: number[]): ProcSample | undefined {
  const samples = pids.map((pid) => procSample(pid)).filter((x) => x !== undefined);
  if (samples.length === 0) return undefined;
  return samples.reduce((a, b) => ({
    rssKb: a.rssKb + b.rssKb,
    rssFileKb: a.rssFileKb + b.rssFileKb,
    rssAnonKb: a.rssAnonKb + b.rssAnonKb,
    hwmKb: a.hwmKb + b.hwmKb,
    cpuTicks: a.cpuTicks + b.cpuTicks,
  }));
}

/** CPU use of a process between two samples, in % of one core. */
function cpuPercent(a: ProcSample | undefined, b: ProcSample | undefined, ms: number): number {
  if (!a || !b) return NaN;
  return (b.cpuTicks - a.cpuTicks) / 100 / (ms / 1000) * 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The KV put + watch rate a bare client reaches on this server: the physical ceiling. */
async function rawCeiling(
  put: NatsConnection,
  watch: NatsConnection,
  log: Logger,
  valueSize: number,
  replicas: number,
): Promise<{ putRate: number; watchRate: number }> {
  const bucket = "bench-raw";
  const kv = await ensureBucket(put, bucket, { replicas, history: 1 });
  const stop = new AbortController();
  let seen = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => ready = r);
  const watching = (async () => {
    for await (const e of watchBucket({ nc: watch, bucket, logger: log, signal: stop.signal })) {
      if (e.type === "ready") ready();
      else seen++;
    }
  })();
  await isReady;
  const value = "x".repeat(valueSize);
  const pipe = new KvPipeline(put, WINDOW);
  const started = performance.now();
  let i = 0;
  while (performance.now() - started < RAW_SECONDS * 1000) {
    await pipe.put(bucket, `k.${i % 10_000}`, value);
    i++;
  }
  await pipe.drain();
  pipe.close();
  const putMs = performance.now() - started;
  const deadline = performance.now() + 30_000;
  while (seen < i && performance.now() < deadline) await sleep(5);
  const watchMs = performance.now() - started;
  stop.abort();
  await watching;
  await kv.destroy().catch(() => {});
  return { putRate: pipe.acked / (putMs / 1000), watchRate: seen / (watchMs / 1000) };
}

interface RunningOperator {
  pid: number | "self";
  /** Resolves when the operator has read the fleet's current state. */
  ready: Promise<void>;
  stop(): Promise<void>;
  /** Desired-state/status writes that failed (inline only; the process reports them as warnings). */
  writeErrors(): number;
}

/** Starts the operator: a child `fleet operator run` (ready = its info log line) or inline. */
async function startOperator(
  o: FleetBenchOptions,
  url: string,
  warnings: string[],
): Promise<RunningOperator> {
  const { log } = o;
  if (o.operator === "process") {
    const op = spawnOperator({
      operatorArgs: ["--nats-url", url, "--replicas", String(o.replicas)],
      denoArgs: o.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`] : [],
      warnings,
      log,
    });
    return { pid: op.pid, ready: op.ready, stop: op.stop, writeErrors: () => 0 };
  }
  const nc = await connectNats({
    servers: url.split(","),
    credentials: noCredentials(),
    name: "fleet-operator",
    logger: log,
  });
  const controller = new AbortController();
  const operator = createOperator({ nc, log, replicas: o.replicas });
  const done = operator.run(controller.signal).finally(() => nc.close());
  return {
    pid: "self",
    ready: operator.ready,
    stop: async () => {
      controller.abort();
      await done;
    },
    writeErrors: () => operator.stats.writeErrors,
  };
}

export async function runFleetBench(o: FleetBenchOptions): Promise<boolean> {
  const { log } = o;
  const n = o.devices;
  const m = o.deployments;
  const say = (text: string) => printLine(`# ${text}`);
  await using server = o.natsUrl || o.cluster ? undefined : await startNatsServer();
  await using cluster = o.cluster && !o.natsUrl ? await startNatsCluster() : undefined;
  const urls = o.natsUrl?.split(",") ?? cluster?.urls ?? [server!.url];
  const url = urls.join(",");
  const natsPids = (cluster?.servers ?? (server ? [server] : []))
    .map((s) => findPid("nats-server", s.storeDir))
    .filter((pid) => pid !== undefined);
  const conns: NatsConnection[] = [];
  for (let c = 0; c < o.connections + 1; c++) {
    conns.push(
      await connectNats({
        // Spread over the cluster: connection c prefers server c % size.
        servers: [...urls.slice(c % urls.length), ...urls.slice(0, c % urls.length)],
        credentials: noCredentials(),
        name: `bench-${c}`,
        logger: log,
      }),
    );
  }
  // The last connection only watches; the others write.
  const watcher = conns[o.connections]!;
  const writers = conns.slice(0, o.connections);
  for (const b of Object.values(Buckets)) {
    await ensureBucket(writers[0]!, b, { replicas: o.replicas, history: BUCKET_HISTORY[b] });
  }
  const pipes = writers.map((nc) => new KvPipeline(nc, WINDOW));
  const pipeOf = (i: number) => pipes[i % o.connections]!;
  say(
    `nats ${url}${server || cluster ? " (started here)" : ""}, buckets at ${o.replicas} ` +
      `replica(s); ${n} devices on ${o.connections} ` +
      `connections (device i on connection i % ${o.connections}, ${WINDOW} puts in flight each)`,
  );

  // 1. The raw ceiling, same server, before anything else loads it.
  const sampleState: DeploymentState = {
    deviceId: deviceId(n),
    namespace: NAMESPACE,
    deployment: deploymentName(m),
    generation: 1,
    phase: "Running",
    lastError: "w1234567",
    lastEventAt: new Date().toISOString(),
  };
  const raw = await rawCeiling(
    writers[0]!,
    watcher,
    log,
    JSON.stringify(sampleState).length,
    o.replicas,
  );
  say(`raw KV: ${raw.putRate.toFixed(0)} puts/s, ${raw.watchRate.toFixed(0)} watched/s`);

  // 2. The fleet registers: device info and a first heartbeat.
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
    await pipeOf(i).put(
      Buckets.deviceInfo,
      keys.deviceInfo(info.deviceId),
      JSON.stringify(info),
    );
    await pipeOf(i).put(
      Buckets.deviceHeartbeat,
      keys.heartbeat(info.deviceId),
      JSON.stringify({ deviceId: info.deviceId, at: Date.now() }),
    );
  }
  for (const p of pipes) await p.drain();
  say(`registered ${n} devices in ${((performance.now() - regStart) / 1000).toFixed(2)} s`);

  // Heartbeats keep flowing for the rest of the run.
  const stop = new AbortController();
  const heartbeats = (async () => {
    const perTick = Math.max(1, Math.ceil(n / (HEARTBEAT_PERIOD_MS / 100)));
    let next = 0;
    while (!stop.signal.aborted) {
      await sleep(100);
      for (let k = 0; k < perTick; k++, next = (next + 1) % n) {
        await pipeOf(next).put(
          Buckets.deviceHeartbeat,
          keys.heartbeat(deviceId(next)),
          JSON.stringify({ deviceId: deviceId(next), at: Date.now() }),
        );
      }
    }
  })();

  // 3. The operator.
  const opStart = performance.now();
  const warnings: string[] = [];
  const operators: RunningOperator[] = [];
  let op = await startOperator(o, url, warnings);
  operators.push(op);
  const operatorPid = op.pid;
  const operatorReady = op.ready;
  await operatorReady;
  const coldStartS = (performance.now() - opStart) / 1000;
  say(`operator ready (read ${n} devices) in ${coldStartS.toFixed(2)} s`);
  let peakRssKb = 0;
  const sampler = setInterval(() => {
    const s = procSample(operatorPid);
    if (s) peakRssKb = Math.max(peakRssKb, s.rssKb);
  }, 200);

  // 4. Status watch (latency and exactness) and desired-state watch (fan-out).
  const matched = Array.from({ length: m }, (_, j) => matchedDevices(j, n, m));
  const expectedDesired = matched.reduce((s, d) => s + d.length, 0);
  /** Per deployment: send time of each write, by its per-deployment index. */
  const writeTimes: number[][] = Array.from({ length: m }, () => []);
  /** Per deployment: how many writes the latest status includes. */
  const included = new Array<number>(m).fill(0);
  const latencies: number[] = [];
  const statuses = new Map<number, DeploymentStatus>();
  let lastStatusAt = performance.now();
  /** Extra observers of the two buckets the operator writes (retarget and restart phases). */
  let onStatusEvent: ((e: WatchEvent) => void) | undefined;
  let onDesiredEvent: ((e: WatchEvent) => void) | undefined;
  let lastOperatorWriteAt = performance.now();
  const statusWatch = (async () => {
    for await (
      const e of watchBucket({
        nc: watcher,
        bucket: Buckets.deploymentStatus,
        logger: log,
        signal: stop.signal,
      })
    ) {
      if (e.type !== "ready") lastOperatorWriteAt = performance.now();
      onStatusEvent?.(e);
      if (e.type !== "put") continue;
      const now = performance.now();
      const j = Number(/^bench\.d-(\d+)$/.exec(e.key)?.[1] ?? NaN);
      if (!Number.isInteger(j)) continue;
      const status = parseJsonWith(DeploymentStatus, e.value, "status");
      statuses.set(j, status);
      lastStatusAt = now;
      const tag = status.aggregate.lastError?.message;
      const upTo = tag ? Number(tag.split(":")[1]) + 1 : 0;
      for (let w = included[j]!; w < upTo; w++) latencies.push(now - writeTimes[j]![w]!);
      if (upTo > included[j]!) included[j] = upTo;
    }
  })();
  const desiredKeys = new Set<string>();
  let fanOutDone!: () => void;
  const fannedOut = new Promise<void>((r) => fanOutDone = r);
  const desiredWatch = (async () => {
    for await (
      const e of watchBucket({
        nc: watcher,
        bucket: Buckets.desiredState,
        logger: log,
        signal: stop.signal,
      })
    ) {
      if (e.type !== "ready") lastOperatorWriteAt = performance.now();
      onDesiredEvent?.(e);
      if (e.type === "put" && parseKey.desiredState(e.key)) desiredKeys.add(e.key);
      else if (e.type === "delete") desiredKeys.delete(e.key);
      if (desiredKeys.size >= expectedDesired) fanOutDone();
    }
  })();

  // 5. M deployments.
  const cpu0 = procSample(operatorPid);
  const nats0 = natsSample(natsPids);
  const fanStart = performance.now();
  const store = new NatsDeploymentStore(writers[0]!, log);
  await Promise.all(
    Array.from({ length: m }, (_, j) =>
      store.apply(singleServiceDeployment({
        name: deploymentName(j),
        namespace: NAMESPACE,
        image: "localhost/bench:1",
        selector: selectorOf(j),
      }))),
  );
  const fanTimeout = sleep(o.timeoutSeconds * 1000).then(() => "timeout" as const);
  const fanResult = await Promise.race([fannedOut.then(() => "ok" as const), fanTimeout]);
  const fanOutS = (performance.now() - fanStart) / 1000;
  say(
    `fan-out: ${desiredKeys.size}/${expectedDesired} desired-state keys in ${
      fanOutS.toFixed(2)
    } s` +
      (fanResult === "timeout" ? " (TIMED OUT)" : ""),
  );

  // 6. State writes at the rate, for the duration.
  type Sim = { phase: DeploymentState["phase"]; tag: string; at: string };
  const truth: Map<number, Sim>[] = Array.from({ length: m }, () => new Map());
  const pairs = matched.flatMap((devs, j) => devs.map((i) => [i, j] as const));
  let seq = 0;
  const base = Date.now();
  const writeStart = performance.now();
  const cpu1 = procSample(operatorPid);
  const nats1 = natsSample(natsPids);
  const self1 = procSample("self");
  const durationMs = o.durationSeconds * 1000;
  const perMs = o.rate / 1000;
  while (performance.now() - writeStart < durationMs) {
    const due = o.rate > 0 ? Math.floor((performance.now() - writeStart) * perMs) : seq + WINDOW;
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
      const index = writeTimes[j]!.length;
      const tag = `w:${index}`;
      // Strictly increasing per run, so the newest write is the aggregate's lastError.
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
      writeTimes[j]!.push(performance.now());
      await pipeOf(i).put(
        Buckets.deviceState,
        keys.deviceState(state.deviceId, { namespace: NAMESPACE, name: state.deployment }),
        JSON.stringify(state),
      );
    }
  }
  for (const p of pipes) await p.drain();
  const writeEnd = performance.now();
  const writes = seq;
  const sentRate = writes / ((writeEnd - writeStart) / 1000);
  say(`wrote ${writes} states in ${((writeEnd - writeStart) / 1000).toFixed(2)} s`);

  // 7. Quiescence: every deployment's status includes its last write.
  const total = () => included.reduce((s, x) => s + x, 0);
  const quietDeadline = performance.now() + o.timeoutSeconds * 1000;
  while (total() < writes && performance.now() < quietDeadline) await sleep(20);
  const processedAt = lastStatusAt;
  const cpu2 = procSample(operatorPid);
  const nats2 = natsSample(natsPids);
  const self2 = procSample("self");
  const processedS = (processedAt - writeStart) / 1000;
  const processedRate = total() / Math.max(processedS, (writeEnd - writeStart) / 1000);
  // One more flush interval, then compare with the truth.
  await sleep(1500);
  let exact = 0;
  const mismatches: string[] = [];
  for (let j = 0; j < m; j++) {
    const want: Aggregate = {
      matchedDeviceCount: matched[j]!.length,
      succeeded: 0,
      failed: 0,
      pending: 0,
      unreachable: 0,
      lastError: null,
    };
    let newest: Sim | undefined;
    let newestDevice = -1;
    for (const [i, s] of truth[j]!) {
      if (s.phase === "Running") want.succeeded++;
      if (s.phase === "Failed") want.failed++;
      if (!newest || s.at > newest.at) [newest, newestDevice] = [s, i];
    }
    want.pending = want.matchedDeviceCount - want.succeeded - want.failed;
    if (newest) {
      want.lastError = { deviceId: deviceId(newestDevice), message: newest.tag, at: newest.at };
    }
    const got = statuses.get(j)?.aggregate;
    if (got && JSON.stringify(got) === JSON.stringify(want)) exact++;
    else if (mismatches.length < 3) {
      mismatches.push(
        `${deploymentName(j)} want ${JSON.stringify(want)} got ${JSON.stringify(got)}`,
      );
    }
  }
  for (const line of mismatches) say(`MISMATCH ${line}`);

  const hwm = procSample(operatorPid)?.hwmKb ?? 0;
  clearInterval(sampler);

  // 8. Retarget: one deployment selecting `half=a` moves to `half notin (a)`; the operator
  // must write exactly the diff (puts for the newly matched, deletes for the no longer matched).
  const retargetRef = { namespace: NAMESPACE, name: "retarget" };
  const retargetSuffix = `.${NAMESPACE}.${retargetRef.name}`;
  const halfKeys = { a: new Set<string>(), b: new Set<string>() };
  for (let i = 0; i < n; i++) {
    halfKeys[deviceLabels(i, m).half as "a" | "b"].add(keys.desiredState(deviceId(i), retargetRef));
  }
  const retargetKeys = new Set<string>();
  const rt = { puts: 0, deletes: 0, other: 0, counting: false, examples: [] as string[] };
  onDesiredEvent = (e) => {
    if (e.type === "ready") return;
    const mine = e.key.endsWith(retargetSuffix);
    if (mine && e.type === "put") retargetKeys.add(e.key);
    if (mine && e.type === "delete") retargetKeys.delete(e.key);
    if (!rt.counting) return;
    if (e.type === "put" && halfKeys.b.has(e.key)) rt.puts++;
    else if (e.type === "delete" && halfKeys.a.has(e.key)) rt.deletes++;
    else {
      rt.other++;
      if (rt.examples.length < 3) rt.examples.push(`${e.type} ${e.key}`);
    }
  };
  const retargetTo = (selector: LabelSelector) =>
    store.apply(singleServiceDeployment({
      name: retargetRef.name,
      namespace: NAMESPACE,
      image: "localhost/bench:1",
      selector,
    }));
  const waitFor = async (cond: () => boolean, ms: number) => {
    const deadline = performance.now() + ms;
    while (!cond() && performance.now() < deadline) await sleep(5);
    return cond();
  };
  const holds = (want: Set<string>) => () =>
    retargetKeys.size === want.size && [...want].every((k) => retargetKeys.has(k));
  const quiet = (ms: number) => () => performance.now() - lastOperatorWriteAt >= ms;
  await retargetTo({ matchLabels: { half: "a" } });
  let retargetOk = await waitFor(holds(halfKeys.a), o.timeoutSeconds * 1000) &&
    await waitFor(quiet(1500), o.timeoutSeconds * 1000);
  if (!retargetOk) say(`retarget: setup timed out (${retargetKeys.size}/${halfKeys.a.size} keys)`);
  rt.counting = true;
  const retargetStart = performance.now();
  await retargetTo({ matchExpressions: [{ key: "half", operator: "NotIn", values: ["a"] }] });
  const retargetReached = await waitFor(holds(halfKeys.b), o.timeoutSeconds * 1000);
  const retargetS = (performance.now() - retargetStart) / 1000;
  // Settle: anything written after the diff is a write too many.
  await sleep(RETARGET_SETTLE_MS);
  rt.counting = false;
  retargetOk = retargetOk && retargetReached && rt.puts === halfKeys.b.size &&
    rt.deletes === halfKeys.a.size && rt.other === 0;
  say(
    `retarget (half=a → half notin (a)): ${retargetReached ? "" : "TIMED OUT "}` +
      `${retargetS.toFixed(2)} s; puts ${rt.puts} (expected ${halfKeys.b.size}), deletes ` +
      `${rt.deletes} (expected ${halfKeys.a.size}), other writes ${rt.other}` +
      (rt.examples.length ? ` e.g. ${rt.examples.join(", ")}` : "") +
      (retargetOk ? "" : " — FAILED: the operator did not write exactly the diff"),
  );
  onDesiredEvent = undefined;

  // 9. Operator cold start: stop it, start a new one; it rebuilds from KV and must write
  // nothing to desired-state or fleet-deployment-status. State writes are over; heartbeats go on.
  await waitFor(quiet(1500), o.timeoutSeconds * 1000);
  await op.stop();
  await sleep(500);
  const restart = { writes: 0, examples: [] as string[] };
  const countWrite = (bucket: string) => (e: WatchEvent) => {
    if (e.type === "ready") return;
    restart.writes++;
    if (restart.examples.length < 3) restart.examples.push(`${bucket} ${e.type} ${e.key}`);
  };
  onDesiredEvent = countWrite(Buckets.desiredState);
  onStatusEvent = countWrite(Buckets.deploymentStatus);
  const restartStart = performance.now();
  op = await startOperator(o, url, warnings);
  operators.push(op);
  let restartPeakKb = 0;
  const restartSampler = setInterval(() => {
    const s = procSample(op.pid);
    if (s) restartPeakKb = Math.max(restartPeakKb, s.rssKb);
  }, 100);
  const restartReady = await Promise.race([
    op.ready.then(() => true),
    sleep(o.timeoutSeconds * 1000).then(() => false),
  ]);
  const restartS = (performance.now() - restartStart) / 1000;
  restartPeakKb = Math.max(restartPeakKb, procSample(op.pid)?.hwmKb ?? 0);
  const writesAtReady = restart.writes;
  await sleep(RESTART_SETTLE_MS);
  clearInterval(restartSampler);
  onDesiredEvent = onStatusEvent = undefined;
  const restartOk = restartReady && restart.writes === 0;
  say(
    `operator cold start: ${restartReady ? "" : "NOT READY "}ready in ${restartS.toFixed(2)} s, ` +
      `peak RSS ${(restartPeakKb / 1024).toFixed(1)} MB` +
      (op.pid === "self" ? " (inline: the bench process)" : "") +
      `; writes to ${Buckets.desiredState}/${Buckets.deploymentStatus}: ${restart.writes} ` +
      `(${writesAtReady} before ready, then ${RESTART_SETTLE_MS / 1000} s watched)` +
      (restart.examples.length ? ` e.g. ${restart.examples.join(", ")}` : "") +
      (restartOk ? "" : " — FAILED: a restarted operator must not write"),
  );

  if (!restartOk && server) say(`nats-server log:\n${await server.logTail(15)}`);
  for (const [i, s] of (cluster?.servers ?? []).entries()) {
    if (!restartOk) say(`nats-server n${i + 1} log:\n${await s.logTail(10)}`);
  }
  stop.abort();
  await Promise.all([heartbeats, statusWatch, desiredWatch]);
  const putErrors = pipes.reduce((s, p) => s + p.errors, 0);
  if (putErrors > 0) {
    say(`put errors: ${putErrors}, first: ${pipes.find((p) => p.firstError)?.firstError}`);
  }
  await op.stop();
  for (const nc of conns) await nc.close();

  latencies.sort((a, b) => a - b);
  const runMs = processedAt - writeStart;
  const opErrors = o.operator === "inline"
    ? operators.reduce((s, x) => s + x.writeErrors(), 0)
    : warnings.filter((w) => /Could not/.test(w)).length;
  const ok = fanResult === "ok" && exact === m && putErrors === 0 && opErrors === 0 &&
    total() === writes && retargetOk && restartOk;
  say(
    `cpu % of a core during writes: operator ${fmt(cpuPercent(cpu1, cpu2, runMs))}, ` +
      `nats-server ${fmt(cpuPercent(nats1, nats2, runMs))}, simulator ${
        fmt(cpuPercent(self1, self2, runMs))
      }; during fan-out: operator ${fmt(cpuPercent(cpu0, cpu1, fanOutS * 1000))}, nats-server ${
        fmt(cpuPercent(nats0, nats1, fanOutS * 1000))
      }` + (o.operator === "inline" ? " (inline: operator = simulator process)" : ""),
  );
  printLine(
    `fleet bench: devices=${n} deployments=${m} connections=${o.connections} ` +
      `nats_servers=${urls.length} replicas=${o.replicas} ` +
      `desired_keys=${expectedDesired} fanout_s=${fmt(fanOutS, 2)} ` +
      `cold_start_s=${fmt(coldStartS, 2)} ` +
      `state_writes=${writes} sent_per_s=${fmt(sentRate)} processed_per_s=${fmt(processedRate)} ` +
      `errors=${putErrors + opErrors} ` +
      `latency_p50_ms=${fmt(percentile(latencies, 0.5))} latency_p99_ms=${
        fmt(percentile(latencies, 0.99))
      } ` +
      `exact=${exact}/${m} operator_peak_rss_mb=${fmt(Math.max(peakRssKb, hwm) / 1024, 1)} ` +
      `operator_cpu_pct=${fmt(cpuPercent(cpu1, cpu2, runMs))} ` +
      `raw_put_per_s=${fmt(raw.putRate)} raw_watch_per_s=${fmt(raw.watchRate)} ` +
      `processed_vs_raw_watch=${fmt(processedRate / raw.watchRate * 100, 1)}% ` +
      `retarget_s=${fmt(retargetS, 2)} retarget_puts=${rt.puts}/${halfKeys.b.size} ` +
      `retarget_deletes=${rt.deletes}/${halfKeys.a.size} retarget_other_writes=${rt.other} ` +
      `restart_ready_s=${fmt(restartS, 2)} restart_peak_rss_mb=${fmt(restartPeakKb / 1024, 1)} ` +
      `restart_writes=${restart.writes} ` +
      `result=${ok ? "ok" : "FAILED"}`,
  );
  return ok;
}
