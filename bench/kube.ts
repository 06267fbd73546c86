/**
 * Control-plane benchmark of the kube source: a real kube-apiserver with etcd, a real
 * nats-server, the operator as a child `fleet operator run --source kube`, and N simulated
 * devices (no podman). `deno task bench:kube --devices N --deployments M --rate R --duration D`
 * Prints progress lines (`# `), then LAST one line of figures.
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
 * The simulated fleet, its devices and their state writes (bench/_sim_fleet.ts,
 * _device_simulator.ts, _state_writes.ts) are those of bench:fleet.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import * as z from "zod";
import { Condition, REACHABLE } from "../crd/device_resource.ts";
import { Aggregate, Buckets } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { sleep, untilAborted } from "../adapters/timers.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { informer, KubeClient } from "../adapters/kube/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { openBucket } from "../adapters/nats/mod.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { DeploymentType, DeviceType, installCrds } from "../operator/mod.ts";
import { cpuPercent, findPid, PeakRss, type ProcSample, procSample } from "./_proc.ts";
import { failedWrites, spawnOperator } from "./_operator_process.ts";
import { applyDeployments, deviceId, matchedDevices, registryLabels } from "./_sim_fleet.ts";
import { fmt, percentile, say } from "./_figures.ts";
import { connectClients, DeviceSimulator } from "./_device_simulator.ts";
import { DesiredKeys } from "./_desired_keys.ts";
import { StateWriter } from "./_state_writes.ts";
import { WriteLatency } from "./_write_latency.ts";
import { doneWithin, heldWithin } from "./_timeouts.ts";
import type { SimulationOptions } from "./_options.ts";

/** Deployments live in `default`: the test API server runs no namespace controller. */
const NAMESPACE = "default";
/** Puts in flight per NATS connection. */
const WINDOW = 256;
/** The operator flushes each aggregate at most once a second; one more, then compare. */
const SETTLE_MS = 1_500;

export interface KubeBenchOptions extends SimulationOptions {
  /** Passed to the operator as `--stale-after`; must exceed the 30 s heartbeat period. */
  staleAfterSeconds: number;
  /** Share of the fleet that stops its heartbeats in the reachability phase. */
  unreachablePercent: number;
}

const PROCESSES = ["operator", "kube-apiserver", "etcd", "nats-server", "simulator"] as const;
type ProcessName = typeof PROCESSES[number];
/** /proc samples of every process at one moment (`at`: performance.now()). */
type Samples = Partial<Record<ProcessName, ProcSample>> & { at: number };

/** CPU use between two samples, in % of one core, per process. */
function cpuPercents(a: Samples, b: Samples): Record<ProcessName, number> {
  const out = {} as Record<ProcessName, number>;
  for (const p of PROCESSES) {
    out[p] = cpuPercent(a[p], b[p], b.at - a.at);
  }
  return out;
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

/** The Deployment objects' `status.aggregate`, through an informer, each one seen by `latency`. */
class StatusView {
  readonly aggregates = new Map<number, Aggregate>();
  readonly #latency: WriteLatency;

  constructor(latency: WriteLatency) {
    this.#latency = latency;
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
        if (!aggregate || !Number.isInteger(j)) continue;
        this.aggregates.set(j, aggregate);
        this.#latency.seen(j, aggregate, now);
      }
    })();
  }
}

/** Merge-patches each simulated device's registry labels onto its Device object, 16 at a time. */
async function labelDevices(client: KubeClient, n: number, m: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      await client.mergePatch(DeviceType, deviceId(i), {
        metadata: { labels: registryLabels(i, m) },
      }, { fieldManager: "kubectl-label" });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** Runs the benchmark; true when every check held. */
export async function runKubeBench(o: KubeBenchOptions): Promise<boolean> {
  const { log } = o;
  const n = o.devices;
  const m = o.deployments;
  const timeoutMs = o.timeoutSeconds * 1000;

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
  const operatorPeak = new PeakRss(op.pid, 200);

  const stop = new AbortController();
  const tasks: Promise<void>[] = [];
  const conns: NatsConnection[] = [];
  let ok = false;
  try {
    if (!await doneWithin(op.ready, timeoutMs)) {
      throw new Error(`The operator was not ready within ${o.timeoutSeconds} s`);
    }
    say(`operator ready (pid ${op.pid}, --source kube --stale-after ${o.staleAfterSeconds})`);

    // The operator created the buckets; the simulator binds to them.
    conns.push(...await connectClients([nats.url], o.connections + 1, "bench-kube", log));
    const watcher = conns[o.connections]!;
    // The operator creates the buckets; the simulator's puts need them to exist.
    for (const b of [Buckets.deviceInfo, Buckets.deviceState, Buckets.deviceHeartbeat]) {
      await openBucket(conns[0]!, b);
    }
    const sim = new DeviceSimulator({
      conns: conns.slice(0, o.connections),
      window: WINDOW,
      devices: n,
      deployments: m,
    });

    const devices = new DeviceView();
    tasks.push(devices.follow(client, stop.signal, log));
    const latency = new WriteLatency(m);
    const statuses = new StatusView(latency);
    tasks.push(statuses.follow(client, stop.signal, log));
    const desired = new DesiredKeys();
    tasks.push(desired.follow(watcher, log, stop.signal));
    await devices.ready;

    // 1. Registration.
    const s0 = sampleAll();
    const regStart = performance.now();
    await sim.register();
    const registerS = (performance.now() - regStart) / 1000;
    say(`${n} devices put their info and a first heartbeat in ${registerS.toFixed(2)} s`);
    tasks.push(sim.beat(stop.signal));
    // Progress every 10 s: at 10,000 devices this phase takes minutes.
    const progress = setInterval(() => {
      say(
        `  ${((performance.now() - regStart) / 1000).toFixed(0)} s: ${devices.exists.size} ` +
          `Device objects, ${devices.reachable.size} Reachable=True`,
      );
    }, 10_000);
    const allExist = await heldWithin(() => devices.exists.size >= n, timeoutMs);
    const deviceCrsS = (performance.now() - regStart) / 1000;
    const allReachable = await heldWithin(() => devices.reachable.size >= n, timeoutMs);
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

    // The Device objects' labels are the registry the operator targets on: a person labels
    // them, as `kubectl label fleetdev` does.
    const labelStart = performance.now();
    await labelDevices(client, n, m);
    say(
      `labelled ${n} Device objects in ${((performance.now() - labelStart) / 1000).toFixed(2)} s`,
    );

    // 2. Fan-out: M Deployment objects, as `fleet apply deployment --target kube` applies them.
    const matched = Array.from({ length: m }, (_, j) => matchedDevices(j, n, m));
    const expectedDesired = matched.reduce((s, d) => s + d.length, 0);
    const store = new KubeDeploymentStore(client, log);
    const fanStart = performance.now();
    await applyDeployments(store, m, NAMESPACE);
    const appliedS = (performance.now() - fanStart) / 1000;
    const fannedOut = await heldWithin(() => desired.keys.size >= expectedDesired, timeoutMs);
    const fanOutS = (performance.now() - fanStart) / 1000;
    const countsIn = await heldWithin(
      () => matched.every((d, j) => statuses.aggregates.get(j)?.matchedDeviceCount === d.length),
      timeoutMs,
    );
    const statusS = (performance.now() - fanStart) / 1000;
    const s2 = sampleAll();
    say(
      `fan-out: ${m} Deployment objects applied in ${appliedS.toFixed(2)} s; ` +
        `${desired.keys.size}/${expectedDesired} desired-state keys in ${fanOutS.toFixed(2)} s` +
        `${fannedOut ? "" : " (TIMED OUT)"}; every status.aggregate counts its devices after ` +
        `${statusS.toFixed(2)} s${countsIn ? "" : " (TIMED OUT)"}`,
    );

    // 3. State writes at the rate, for the duration.
    const writer = new StateWriter({ sim, matched, namespace: NAMESPACE, latency });
    const written = await writer.run(o.rate, o.durationSeconds * 1000);
    const { writes, startedAt: writeStart, endedAt: writeEnd } = written;
    say(`wrote ${writes} states in ${((writeEnd - writeStart) / 1000).toFixed(2)} s`);
    const converged = await heldWithin(() => latency.included >= writes, timeoutMs);
    const s3 = sampleAll();
    const writeCpu = cpuPercents(s2, s3);
    const processedRate = latency.processedRate(writeStart, writeEnd);
    await sleep(SETTLE_MS);
    const afterWrites = writer.check((j) => statuses.aggregates.get(j));
    for (const line of afterWrites.mismatches) say(`MISMATCH ${line}`);
    say(
      `convergence: ${latency.included}/${writes} writes in the aggregates` +
        `${converged ? "" : " (TIMED OUT)"}, ${fmt(processedRate)}/s; latency p50 ` +
        `${fmt(latency.latency(0.5))} ms, p99 ` +
        `${fmt(latency.latency(0.99))} ms; exact ${afterWrites.exact}/${m}`,
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
    const allFlipped = await heldWithin(
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
    const unreachableIn = await heldWithin(
      () => silentOf.every((k, j) => statuses.aggregates.get(j)?.unreachable === k),
      timeoutMs,
    );
    await sleep(SETTLE_MS);
    const afterSilence = writer.check((j) => statuses.aggregates.get(j), (j) => silentOf[j]!);
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
    const operatorPeakKb = operatorPeak.stop();
    const end = sampleAll();
    const putErrors = sim.errors;
    if (putErrors > 0) say(`put errors: ${putErrors}, first: ${sim.firstError}`);
    const opErrors = failedWrites(op.warnings);
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
        `state_writes=${writes} sent_per_s=${fmt(written.sentRate)} ` +
        `processed_per_s=${fmt(processedRate)} ` +
        `latency_p50_ms=${fmt(latency.latency(0.5))} latency_p99_ms=${
          fmt(latency.latency(0.99))
        } ` +
        `exact=${afterWrites.exact}/${m} ` +
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
    operatorPeak.stop();
    await op.stop();
    await Promise.allSettled(tasks);
    for (const nc of conns) await nc.close();
  }
}

function describeCpu(cpu: Record<ProcessName, number>): string {
  return PROCESSES.map((p) => `${p} ${fmt(cpu[p])}`).join(", ");
}
