/**
 * A progressive rollout through the real operator (issue 15, item 5): `fleet operator run` as a
 * child process (its CPU and RSS read from /proc) and a nats-server started here, against N
 * simulated devices (labels `site=site-<i % sites>`) on a few connections, as bench:fleet
 * simulates them: registered, labelled in the registry, beating once per 30 s.
 *
 * The devices react to desired state as agents would, without podman: the simulator watches
 * `desired-state` and, for each put, writes the device's report (`device-state`) Running on
 * the revision it was given (the hash of its workload) at once.
 *
 * The story: deployment `bench/web` is applied Immediate on image 1; once every device reports
 * revision 1 and the operator has made every device's consumer, it is applied again Progressive
 * (batches 1 %, 5 %, 25 %, 50 %, the implicit rest; bake 0 s; Auto approval) on image 2.
 * Measured from that apply until the status says Complete: per batch its devices, how long
 * writing them took, and the time from the batch's last healthy report (when the simulator
 * published it) to the next batch's first desired-state write (when the simulator's watch saw
 * it), the last batch's to the Complete status; the operator's CPU seconds and peak RSS; and
 * every desired-state and status write, which must be exactly one put per device.
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  BUCKET_HISTORY,
  Buckets,
  type DeploymentRef,
  type DeploymentState,
  DeploymentStatus,
  DesiredState,
  keys,
  parseJsonWith,
  parseKey,
  revisionHash,
  type RolloutStatus,
} from "../core/mod.ts";
import { Rollout } from "../core/rollout_policy.ts";
import type { Logger } from "../adapters/logger.ts";
import { ensureBucket, watchBucket, type WatchEvent } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { connectClients, DeviceSimulator } from "./_device_simulator.ts";
import { failedWrites, spawnOperator } from "./_operator_process.ts";
import { cpuPercent, findPid, PeakRss, type ProcSample, procSample } from "./_proc.ts";
import { doneWithin, heldWithin } from "./_timeouts.ts";
import { fmt, say } from "./_figures.ts";
import { sleep } from "../adapters/timers.ts";
import { printLine } from "../adapters/output.ts";

const REF: DeploymentRef = { namespace: "bench", name: "web" };
const CONNECTIONS = 4;
/** Puts in flight per connection. */
const WINDOW = 512;
/** The operator's CPU with the fleet idle (heartbeats only) is sampled this long first. */
const BASELINE_MS = 5_000;
export const ROLLOUT = Rollout.parse({
  strategy: "Progressive",
  batches: [{ limit: "1%" }, { limit: "5%" }, { limit: "25%" }, { limit: "50%" }],
  bake: "0s",
});

export interface OperatorRolloutOptions {
  devices: number;
  sites: number;
  /** Each wait gives up after this. */
  timeoutMs: number;
  /** Writes a V8 CPU profile of the operator process into this directory. */
  cpuProfDir?: string | undefined;
  log: Logger;
}

/** One batch as the simulator saw it, times in ms of performance.now(). */
interface BatchFigures {
  devices: number;
  firstWriteAt: number;
  lastWriteAt: number;
  lastReportAt: number;
  /** The next batch's first desired-state write, or for the last batch the Complete status. */
  nextAt: number;
}

/** Every desired-state put, in the order the watch saw them, and the reports answering them. */
class ReactingDevices {
  /** generation → the revision hash of the workload desired state carries with it. */
  readonly #hashOf = new Map<number, string>();
  readonly givenAt = new Map<number, number[]>();
  /** Device indexes given each generation, in the order seen. */
  readonly given = new Map<number, number[]>();
  /** generation → device → when its Running report was published. */
  readonly reportedAt = new Map<number, Map<number, number>>();
  deletes = 0;
  other = 0;

  constructor(readonly sim: DeviceSimulator) {}

  onPut(key: string, value: Uint8Array): void {
    const at = performance.now();
    const parsed = parseKey.desiredState(key);
    if (parsed === undefined || parsed.ref.name !== REF.name) {
      this.other++;
      return;
    }
    const i = Number(parsed.deviceId.slice("dev-".length));
    // One full parse per generation: every put of a generation carries the same workload.
    const { generation } = JSON.parse(new TextDecoder().decode(value)) as { generation: number };
    let hash = this.#hashOf.get(generation);
    if (hash === undefined) {
      hash = revisionHash(parseJsonWith(DesiredState, value, key).score);
      this.#hashOf.set(generation, hash);
      this.given.set(generation, []);
      this.givenAt.set(generation, []);
      this.reportedAt.set(generation, new Map());
    }
    this.given.get(generation)!.push(i);
    this.givenAt.get(generation)!.push(at);
    const state: DeploymentState = {
      deviceId: parsed.deviceId,
      namespace: REF.namespace,
      deployment: REF.name,
      generation,
      phase: "Running",
      lastError: null,
      lastEventAt: new Date().toISOString(),
      revision: hash,
    };
    const reported = this.reportedAt.get(generation)!;
    void this.sim.put(
      i,
      Buckets.deviceState,
      keys.deviceState(parsed.deviceId, REF),
      JSON.stringify(state),
    ).then(() => reported.set(i, performance.now()));
  }

  reported(generation: number): number {
    return this.reportedAt.get(generation)?.size ?? 0;
  }
}

/** Splits the puts of the rollout's generation into its batches, by the status's batch sizes. */
function batchFigures(
  devices: ReactingDevices,
  generation: number,
  status: RolloutStatus,
  completeAt: number,
): BatchFigures[] {
  const order = devices.given.get(generation) ?? [];
  const at = devices.givenAt.get(generation) ?? [];
  const reported = devices.reportedAt.get(generation) ?? new Map<number, number>();
  const out: BatchFigures[] = [];
  let from = 0;
  for (const batch of status.batches) {
    const to = from + batch.selected;
    let lastReportAt = NaN;
    for (let k = from; k < to && k < order.length; k++) {
      const r = reported.get(order[k]!);
      if (r !== undefined && !(r <= lastReportAt)) lastReportAt = r;
    }
    out.push({
      devices: batch.selected,
      firstWriteAt: at[from] ?? NaN,
      lastWriteAt: at[to - 1] ?? NaN,
      lastReportAt,
      nextAt: to < order.length ? at[to]! : completeAt,
    });
    from = to;
  }
  return out;
}

/** Waits until the operator has made every device's consumer (nats-server's count of them). */
async function consumersMade(nc: NatsConnection, n: number, timeoutMs: number): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const info = await jsm.streams.info(`KV_${Buckets.desiredState}`);
    if (info.state.consumer_count >= n) return true;
    await sleep(1_000);
  }
  return false;
}

const seconds = (ms: number) => fmt(ms / 1000, 2);
const cpuSeconds = (a: ProcSample | undefined, b: ProcSample | undefined) =>
  a && b ? (b.cpuTicks - a.cpuTicks) / 100 : NaN;

/** Runs the story; prints progress, then one line of figures. @returns whether it held */
export async function runOperatorRollout(o: OperatorRolloutOptions): Promise<boolean> {
  const { log, timeoutMs } = o;
  const n = o.devices;
  const loadBefore = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  await using server = await startNatsServer();
  const natsPid = findPid("nats-server", server.storeDir);
  const conns = await connectClients([server.url], CONNECTIONS + 1, "bench-rollout", log);
  const watcher = conns[CONNECTIONS]!;
  const writers = conns.slice(0, CONNECTIONS);
  for (const b of Object.values(Buckets)) {
    await ensureBucket(writers[0]!, b, { replicas: 1, history: BUCKET_HISTORY[b] });
  }
  const sim = new DeviceSimulator({
    conns: writers,
    window: WINDOW,
    devices: n,
    deployments: 1,
    labelsOf: (i) => ({ site: `site-${i % o.sites}` }),
  });
  const started = performance.now();
  await sim.labelAll();
  await sim.register();
  say(
    `operator rollout: nats ${server.url} (started here), ${n} devices over ${o.sites} sites ` +
      `labelled and registered in ${seconds(performance.now() - started)} s; load ${loadBefore}`,
  );
  const stop = new AbortController();
  const heartbeats = sim.beat(stop.signal);

  const devices = new ReactingDevices(sim);
  const follow = (bucket: string, onEvent: (e: WatchEvent) => void) =>
    (async () => {
      for await (
        const e of watchBucket({ nc: watcher, bucket, logger: log, signal: stop.signal })
      ) {
        onEvent(e);
      }
    })();
  let watchReady!: () => void;
  const desiredReady = new Promise<void>((r) => watchReady = r);
  const desiredWatch = follow(Buckets.desiredState, (e) => {
    if (e.type === "ready") watchReady();
    else if (e.type === "put") devices.onPut(e.key, e.value);
    else devices.deletes++;
  });
  let rollout: RolloutStatus | undefined;
  let completeAt = NaN;
  let statusPuts = 0;
  const statusKey = keys.deploymentStatus(REF);
  const statusWatch = follow(Buckets.deploymentStatus, (e) => {
    if (e.type !== "put" || e.key !== statusKey) return;
    statusPuts++;
    rollout = parseJsonWith(DeploymentStatus, e.value, e.key).rollout;
    if (rollout?.phase === "Complete" && Number.isNaN(completeAt)) completeAt = performance.now();
  });
  await desiredReady;

  const warnings: string[] = [];
  const op = spawnOperator({
    operatorArgs: ["--nats-url", server.url, "--replicas", "1"],
    denoArgs: o.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`] : [],
    warnings,
    log,
  });
  const opReady = await doneWithin(op.ready, timeoutMs);
  const peak = new PeakRss(op.pid, 200);
  say(`operator ready: ${opReady}, in ${seconds(performance.now() - started)} s since start`);

  // Revision 1, Immediate: every device on it.
  const store = new NatsDeploymentStore(writers[0]!, log);
  const selector = { matchExpressions: [{ key: "site", operator: "Exists" as const }] };
  const v1 = singleServiceDeployment({ ...REF, image: "localhost/bench:1", selector });
  const applied1 = performance.now();
  const { generation: gen1 } = await store.apply(v1);
  const onV1 = await heldWithin(() => devices.reported(gen1) >= n, timeoutMs, 50);
  const onV1Ms = performance.now() - applied1;
  // The operator makes every device's consumer meanwhile: not part of the rollout measured.
  const consumers = await consumersMade(writers[0]!, n, timeoutMs);
  say(
    `revision 1 (Immediate) on ${devices.reported(gen1)}/${n} devices ${seconds(onV1Ms)} s ` +
      `after the apply; every device's consumer made ${consumers ? "" : "NOT "}` +
      `${seconds(performance.now() - applied1)} s after it`,
  );
  const base0 = procSample(op.pid);
  await sleep(BASELINE_MS);
  const base1 = procSample(op.pid);
  const baselinePct = cpuPercent(base0, base1, BASELINE_MS);

  // Revision 2, Progressive: the rollout measured.
  const puts1 = devices.given.get(gen1)?.length ?? 0;
  const deletes0 = devices.deletes;
  const statusPuts0 = statusPuts;
  const cpu0 = procSample(op.pid);
  const nats0 = natsPid === undefined ? undefined : procSample(natsPid);
  const self0 = procSample("self");
  const v2 = singleServiceDeployment({ ...REF, image: "localhost/bench:2", selector });
  v2.spec.rollout = ROLLOUT;
  const applied2 = performance.now();
  const { generation: gen2 } = await store.apply(v2);
  const complete = await heldWithin(
    () => !Number.isNaN(completeAt) && rollout?.revision.number === 2,
    timeoutMs,
    20,
  );
  const endAt = Number.isNaN(completeAt) ? performance.now() : completeAt;
  const cpu1 = procSample(op.pid);
  const nats1 = natsPid === undefined ? undefined : procSample(natsPid);
  const self1 = procSample("self");
  const peakKb = peak.stop();
  // Late reports of the last batch and any write beyond the diff.
  await sleep(2_000);
  const puts2 = devices.given.get(gen2)?.length ?? 0;
  const rewrites1 = (devices.given.get(gen1)?.length ?? 0) - puts1;
  const deletes = devices.deletes - deletes0;
  const batches = rollout ? batchFigures(devices, gen2, rollout, endAt) : [];
  const transitions: number[] = [];
  batches.forEach((b, k) => {
    const gap = b.nextAt - b.lastReportAt;
    if (k < batches.length - 1) transitions.push(gap);
    say(
      `batch ${k + 1}: ${b.devices} devices, written in ${
        fmt(b.lastWriteAt - b.firstWriteAt)
      } ms ` +
        `(${fmt(b.firstWriteAt - applied2)} ms after the apply); last healthy report → ` +
        (k < batches.length - 1 ? "next batch's first write" : "status Complete") +
        ` ${fmt(gap)} ms`,
    );
  });
  const rolloutMs = endAt - applied2;
  const opCpuS = cpuSeconds(cpu0, cpu1);
  say(
    `rollout ${rollout?.phase ?? "never started"} in ${seconds(rolloutMs)} s; operator CPU ` +
      `${fmt(opCpuS, 2)} s (${fmt(cpuPercent(cpu0, cpu1, rolloutMs))} % of a core; idle with ` +
      `heartbeats only ${fmt(baselinePct)} %), nats-server ${
        fmt(cpuSeconds(nats0, nats1), 2)
      } s, ` +
      `simulator ${fmt(cpuSeconds(self0, self1), 2)} s; writes: ${puts2} desired puts of ` +
      `revision 2, ${rewrites1} of revision 1, ${deletes} deletes, ` +
      `${statusPuts - statusPuts0} status puts`,
  );

  stop.abort();
  await Promise.all([heartbeats, desiredWatch, statusWatch]);
  const putErrors = sim.errors;
  if (putErrors > 0) say(`put errors: ${putErrors}, first: ${sim.firstError}`);
  await op.stop();
  for (const nc of conns) await nc.close();
  const opErrors = failedWrites(warnings);
  const ok = opReady && onV1 && consumers && complete && puts2 === n && rewrites1 === 0 &&
    deletes === 0 && putErrors === 0 && opErrors === 0 &&
    devices.reported(gen2) === n && batches.length === ROLLOUT.batches!.length + 1;
  const loadAfter = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  say(`load before ${loadBefore}, after ${loadAfter}`);
  printLine(
    `rollout via operator: devices=${n} sites=${o.sites} batches=${batches.length} ` +
      `batch_devices=${batches.map((b) => b.devices).join(",")} ` +
      `report_to_next_batch_ms=${transitions.map((t) => fmt(t)).join(",")} ` +
      `report_to_complete_ms=${
        fmt(batches.at(-1) ? batches.at(-1)!.nextAt - batches.at(-1)!.lastReportAt : NaN)
      } ` +
      `rollout_s=${seconds(rolloutMs)} operator_cpu_s=${fmt(opCpuS, 2)} ` +
      `operator_idle_cpu_pct=${fmt(baselinePct)} operator_peak_rss_mb=${fmt(peakKb / 1024, 1)} ` +
      `desired_puts=${puts2}/${n} status_puts=${statusPuts - statusPuts0} ` +
      `errors=${putErrors + opErrors} result=${ok ? "ok" : "FAILED"}`,
  );
  return ok;
}
