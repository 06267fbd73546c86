/**
 * Control-plane benchmark: a real operator (nats source) against N simulated devices, no
 * podman. `deno task bench:fleet --devices N --deployments M --rate R --duration D`
 * Prints progress, then LAST one line of figures.
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
  BUCKET_HISTORY,
  Buckets,
  type DeploymentState,
  DeploymentStatus,
  keys,
  type LabelSelector,
  parseJsonWith,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { sleep } from "../adapters/timers.ts";
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
import { cpuPercent, findPid, PeakRss, type ProcSample, procSample } from "./_proc.ts";
import { failedWrites, spawnOperator } from "./_operator_process.ts";
import {
  applyDeployments,
  benchDeployment,
  deploymentName,
  deviceId,
  deviceLabels,
  matchedDevices,
} from "./_sim_fleet.ts";
import { fmt, say } from "./_figures.ts";
import { KvPipeline } from "./_kv_pipeline.ts";
import { connectClients, DeviceSimulator } from "./_device_simulator.ts";
import { DesiredKeys } from "./_desired_keys.ts";
import { StateWriter } from "./_state_writes.ts";
import { WriteLatency } from "./_write_latency.ts";
import { doneWithin, heldWithin } from "./_timeouts.ts";
import type { SimulationOptions } from "./_options.ts";

const NAMESPACE = "bench";
/** Puts in flight per connection. */
const WINDOW = 512;
const RAW_SECONDS = 5;
/** After the retarget diff is in, how long to watch for writes beyond it. */
const RETARGET_SETTLE_MS = 2_000;
/** After a restarted operator is ready, how long to watch for (forbidden) writes. */
const RESTART_SETTLE_MS = 3_000;

export interface FleetBenchOptions extends SimulationOptions {
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
  await heldWithin(() => seen >= i, 30_000, 5);
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
  const operator = createOperator({
    nc,
    log,
    replicas: o.replicas,
    allowUnboundNamespaces: true,
  });
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
  const timeoutMs = o.timeoutSeconds * 1000;
  await using server = o.natsUrl || o.cluster ? undefined : await startNatsServer();
  await using cluster = o.cluster && !o.natsUrl ? await startNatsCluster() : undefined;
  const urls = o.natsUrl?.split(",") ?? cluster?.urls ?? [server!.url];
  const url = urls.join(",");
  const natsPids = (cluster?.servers ?? (server ? [server] : []))
    .map((s) => findPid("nats-server", s.storeDir))
    .filter((pid) => pid !== undefined);
  const conns = await connectClients(urls, o.connections + 1, "bench", log);
  // The last connection only watches; the others write.
  const watcher = conns[o.connections]!;
  const writers = conns.slice(0, o.connections);
  for (const b of Object.values(Buckets)) {
    await ensureBucket(writers[0]!, b, { replicas: o.replicas, history: BUCKET_HISTORY[b] });
  }
  const sim = new DeviceSimulator({ conns: writers, window: WINDOW, devices: n, deployments: m });
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

  // The devices are labelled in the registry the operator targets on, as enrollment does.
  const labelStart = performance.now();
  await sim.labelAll();
  say(`labelled ${n} devices in ${((performance.now() - labelStart) / 1000).toFixed(2)} s`);

  // 2. The fleet registers: device info and a first heartbeat.
  const regStart = performance.now();
  await sim.register();
  say(`registered ${n} devices in ${((performance.now() - regStart) / 1000).toFixed(2)} s`);

  // Heartbeats keep flowing for the rest of the run.
  const stop = new AbortController();
  const heartbeats = sim.beat(stop.signal);

  // 3. The operator.
  const opStart = performance.now();
  const warnings: string[] = [];
  const operators: RunningOperator[] = [];
  let op = await startOperator(o, url, warnings);
  operators.push(op);
  const operatorPid = op.pid;
  await op.ready;
  const coldStartS = (performance.now() - opStart) / 1000;
  say(`operator ready (read ${n} devices) in ${coldStartS.toFixed(2)} s`);
  const peakRss = new PeakRss(operatorPid, 200);

  // 4. Status watch (latency and exactness) and desired-state watch (fan-out).
  const matched = Array.from({ length: m }, (_, j) => matchedDevices(j, n, m));
  const expectedDesired = matched.reduce((s, d) => s + d.length, 0);
  const latency = new WriteLatency(m);
  const statuses = new Map<number, DeploymentStatus>();
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
      latency.seen(j, status.aggregate, now);
    }
  })();
  const desired = new DesiredKeys();
  const desiredWatch = desired.follow(watcher, log, stop.signal, (e) => {
    if (e.type !== "ready") lastOperatorWriteAt = performance.now();
    onDesiredEvent?.(e);
  });

  // 5. M deployments.
  const cpu0 = procSample(operatorPid);
  const nats0 = natsSample(natsPids);
  const fanStart = performance.now();
  const store = new NatsDeploymentStore(writers[0]!, log);
  await applyDeployments(store, m, NAMESPACE);
  const fannedOut = await heldWithin(() => desired.keys.size >= expectedDesired, timeoutMs, 5);
  const fanOutS = (performance.now() - fanStart) / 1000;
  say(
    `fan-out: ${desired.keys.size}/${expectedDesired} desired-state keys in ${
      fanOutS.toFixed(2)
    } s` +
      (fannedOut ? "" : " (TIMED OUT)"),
  );

  // 6. State writes at the rate, for the duration.
  const writer = new StateWriter({ sim, matched, namespace: NAMESPACE, latency });
  const cpu1 = procSample(operatorPid);
  const nats1 = natsSample(natsPids);
  const self1 = procSample("self");
  const written = await writer.run(o.rate, o.durationSeconds * 1000);
  const { writes, startedAt: writeStart, endedAt: writeEnd } = written;
  say(`wrote ${writes} states in ${((writeEnd - writeStart) / 1000).toFixed(2)} s`);

  // 7. Quiescence: every deployment's status includes its last write.
  await heldWithin(() => latency.included >= writes, timeoutMs);
  const processedAt = latency.lastChangeAt;
  const cpu2 = procSample(operatorPid);
  const nats2 = natsSample(natsPids);
  const self2 = procSample("self");
  const processedRate = latency.processedRate(writeStart, writeEnd);
  // One more flush interval, then compare with the truth.
  await sleep(1500);
  const { exact, mismatches } = writer.check((j) => statuses.get(j)?.aggregate);
  for (const line of mismatches) say(`MISMATCH ${line}`);
  const peakRssKb = peakRss.stop();

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
    store.apply(benchDeployment(retargetRef.name, NAMESPACE, selector));
  const holds = (want: Set<string>) => () =>
    retargetKeys.size === want.size && [...want].every((k) => retargetKeys.has(k));
  const quiet = (ms: number) => () => performance.now() - lastOperatorWriteAt >= ms;
  await retargetTo({ matchLabels: { half: "a" } });
  let retargetOk = await heldWithin(holds(halfKeys.a), timeoutMs, 5) &&
    await heldWithin(quiet(1500), timeoutMs, 5);
  if (!retargetOk) say(`retarget: setup timed out (${retargetKeys.size}/${halfKeys.a.size} keys)`);
  rt.counting = true;
  const retargetStart = performance.now();
  await retargetTo({ matchExpressions: [{ key: "half", operator: "NotIn", values: ["a"] }] });
  const retargetReached = await heldWithin(holds(halfKeys.b), timeoutMs, 5);
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
  await heldWithin(quiet(1500), timeoutMs, 5);
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
  const restartPeak = new PeakRss(op.pid, 100);
  const restartReady = await doneWithin(op.ready, timeoutMs);
  const restartS = (performance.now() - restartStart) / 1000;
  const writesAtReady = restart.writes;
  await sleep(RESTART_SETTLE_MS);
  const restartPeakKb = restartPeak.stop();
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
  const putErrors = sim.errors;
  if (putErrors > 0) say(`put errors: ${putErrors}, first: ${sim.firstError}`);
  await op.stop();
  for (const nc of conns) await nc.close();

  const runMs = processedAt - writeStart;
  const opErrors = o.operator === "inline"
    ? operators.reduce((s, x) => s + x.writeErrors(), 0)
    : failedWrites(warnings);
  const ok = fannedOut && exact === m && putErrors === 0 && opErrors === 0 &&
    latency.included === writes && retargetOk && restartOk;
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
      `state_writes=${writes} sent_per_s=${fmt(written.sentRate)} ` +
      `processed_per_s=${fmt(processedRate)} errors=${putErrors + opErrors} ` +
      `latency_p50_ms=${fmt(latency.latency(0.5))} latency_p99_ms=${fmt(latency.latency(0.99))} ` +
      `exact=${exact}/${m} operator_peak_rss_mb=${fmt(peakRssKb / 1024, 1)} ` +
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
