/**
 * A progressive rollout at fleet scale (issue 15, item 5), in two parts.
 *
 * 1. The decision alone: `--devices` devices (100,000) in 5 batches (a canary, 10 %, 25 %,
 * 50 %, the rest) under a disruption budget per site, every device reporting healthy as soon as
 * it is given the revision. Each step's status goes through JSON, as it does through the store. Measured: the
 * CPU of each decision (wall time of a synchronous call), and per batch the decision that saw
 * its last healthy report and gave the next batch its first targets (the same call, so the
 * time between them is that call). One line of figures.
 *
 * 2. Through the real operator (bench/_rollout_operator.ts): a child `fleet operator run`, a
 * nats-server and the same number of simulated devices answering desired state with healthy
 * reports; per batch the time from its last healthy report to the next batch's first
 * desired-state write, the operator's CPU seconds and peak RSS. One line of figures, last.
 *
 * `deno task bench:rollout [--devices 100000] [--sites 500] [--timeout 900] [--cpu-prof DIR]`
 * (`--cpu-prof`: a V8 CPU profile of the operator process into DIR)
 */
import { parseArgs } from "node:util";
import {
  decideRollout,
  type DeviceObservation,
  freezePopulation,
  type RolloutDevice,
} from "../core/rollout.ts";
import { progressivePolicy, Rollout } from "../core/rollout_policy.ts";
import type { RevisionRef } from "../core/revisions.ts";
import { RolloutStatus } from "../core/rollout_status.ts";
import { fmt, median, say } from "./_figures.ts";
import { printLine } from "../adapters/output.ts";
import { createLogger } from "../adapters/logger.ts";
import { ExitCode } from "../core/errors.ts";
import { runOperatorRollout } from "./_rollout_operator.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "100000" },
    sites: { type: "string", default: "500" },
    timeout: { type: "string", default: "900" },
    "cpu-prof": { type: "string" },
  },
});
const count = Number(values.devices);
const sites = Number(values.sites);
if (!Number.isInteger(count) || count < 10) throw new Error("--devices must be 10 or more");
if (!Number.isInteger(sites) || sites < 1) throw new Error("--sites must be a positive integer");
const timeoutSeconds = Number(values.timeout);
if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) {
  throw new Error("--timeout must be a positive number of seconds");
}

const policy = progressivePolicy(Rollout.parse({
  strategy: "Progressive",
  batches: [{ limit: 1 }, { limit: "10%" }, { limit: "25%" }, { limit: "50%" }],
  disruptionBudget: { groupBy: ["site"], maxUnavailable: "50%" },
}))!;
const STABLE: RevisionRef = { number: 1, hash: "stable0000000000" };
const NEW: RevisionRef = { number: 2, hash: "new0000000000000" };
let now = Date.parse("2026-12-06T10:00:00Z");

const all: RolloutDevice[] = Array.from({ length: count }, (_, i) => ({
  id: `dev-${i}`,
  labels: { site: `site-${i % sites}` },
}));
let started = performance.now();
const population = freezePopulation({ namespace: "default", name: "web" }, all);
const freezeMs = performance.now() - started;
const observed = new Map<string, DeviceObservation>(
  all.map((
    d,
  ) => [d.id, { online: true, report: { revision: STABLE.hash, phase: "Succeeded", at: now } }]),
);

const decideMs: number[] = [];
/** Per batch transition: the decision that started batch n+1. */
const transitions: { batch: number; ms: number; targets: number }[] = [];
let status: RolloutStatus | undefined;
let given = 0;
const cpuStart = performance.now();
for (let step = 0; step < 10_000; step++) {
  started = performance.now();
  const decision = decideRollout({
    policy,
    revision: NEW,
    population,
    devices: observed,
    ...(status ? { status } : { initialStable: STABLE }),
    now,
  });
  const ms = performance.now() - started;
  decideMs.push(ms);
  const before = status?.currentBatch;
  status = RolloutStatus.parse(JSON.parse(JSON.stringify(decision.status)));
  let newlyGiven = 0;
  for (const [id, target] of decision.targets) {
    if (target?.number !== NEW.number) continue;
    const o = observed.get(id)!;
    if (o.report?.revision === NEW.hash) continue;
    newlyGiven++;
    observed.set(id, { online: true, report: { revision: NEW.hash, phase: "Succeeded", at: now } });
  }
  given += newlyGiven;
  if (before !== undefined && status.currentBatch !== before) {
    transitions.push({ batch: status.currentBatch, ms, targets: newlyGiven });
  }
  if (status.phase === "Complete") break;
  now += 1_000;
}
const totalMs = performance.now() - cpuStart;

say(
  `rollout of ${count} devices, ${policy.batches.length} batches, budget 50% of ${sites} sites: ` +
    `${decideMs.length} decisions, ${given} devices given the revision`,
);
for (const t of transitions) {
  say(`batch ${t.batch} started by a decision of ${fmt(t.ms)} ms (${t.targets} first targets)`);
}
printLine(
  `rollout devices=${count} batches=${policy.batches.length} phase=${status?.phase} ` +
    `decisions=${decideMs.length} freeze=${fmt(freezeMs)}ms ` +
    `decide_p50=${fmt(median(decideMs))}ms decide_max=${fmt(Math.max(...decideMs))}ms ` +
    `next_batch_max=${fmt(Math.max(...transitions.map((t) => t.ms)))}ms ` +
    `decide_total=${fmt(totalMs / 1000)}s`,
);

const ok = await runOperatorRollout({
  devices: count,
  sites,
  timeoutMs: timeoutSeconds * 1000,
  cpuProfDir: values["cpu-prof"],
  log: createLogger({ level: "warn" }),
});
if (!ok) Deno.exitCode = ExitCode.failure;
