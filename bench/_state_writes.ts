/**
 * The state writes of both control-plane benchmarks: at a rate, a random matched (device,
 * deployment) pair moves to its next phase (Pending → Running → Failed or Pending → Running …),
 * tagged for {@link WriteLatency}. The truth, each pair's last write, is kept, so that every
 * deployment's aggregate can be checked against it exactly.
 */
import {
  type Aggregate,
  aggregateEquals,
  Buckets,
  type DeploymentState,
  keys,
} from "../core/mod.ts";
import { sleep } from "../adapters/timers.ts";
import type { DeviceSimulator } from "./_device_simulator.ts";
import { deploymentName, deviceId } from "./_sim_fleet.ts";
import type { WriteLatency } from "./_write_latency.ts";

/** A pair's last write. */
interface Written {
  phase: DeploymentState["phase"];
  tag: string;
  at: string;
}

/** What {@link StateWriter.run} did; times are performance.now(). */
export interface WritePhase {
  writes: number;
  startedAt: number;
  endedAt: number;
  /** Writes sent per second. */
  sentRate: number;
}

export class StateWriter {
  readonly #sim: DeviceSimulator;
  /** Per deployment: the devices it matches. */
  readonly #matched: number[][];
  readonly #namespace: string;
  readonly #latency: WriteLatency;
  /** Per deployment: device → its last write. */
  readonly #truth: Map<number, Written>[];

  constructor(options: {
    sim: DeviceSimulator;
    matched: number[][];
    namespace: string;
    latency: WriteLatency;
  }) {
    this.#sim = options.sim;
    this.#matched = options.matched;
    this.#namespace = options.namespace;
    this.#latency = options.latency;
    this.#truth = options.matched.map(() => new Map());
  }

  /**
   * Writes at `rate` per second (0: as fast as the devices' pipelines take them) for
   * `durationMs`, then waits until every put is acknowledged.
   */
  async run(rate: number, durationMs: number): Promise<WritePhase> {
    const pairs = this.#matched.flatMap((devs, j) => devs.map((i) => [i, j] as const));
    let seq = 0;
    const base = Date.now();
    const startedAt = performance.now();
    while (performance.now() - startedAt < durationMs) {
      const due = rate > 0
        ? Math.floor((performance.now() - startedAt) * rate / 1000)
        : seq + this.#sim.window;
      if (seq >= due) {
        await sleep(1);
        continue;
      }
      for (; seq < due && pairs.length > 0; seq++) {
        const [i, j] = pairs[Math.floor(Math.random() * pairs.length)]!;
        // Strictly increasing, so the newest write is the aggregate's lastError.
        await this.#write(i, j, seq, new Date(base + seq).toISOString());
      }
    }
    await this.#sim.drain();
    const endedAt = performance.now();
    return { writes: seq, startedAt, endedAt, sentRate: seq / ((endedAt - startedAt) / 1000) };
  }

  async #write(i: number, j: number, seq: number, at: string): Promise<void> {
    const previous = this.#truth[j]!.get(i)?.phase;
    const phase = previous === undefined
      ? "Pending"
      : previous === "Running"
      ? (seq % 3 === 0 ? "Failed" : "Pending")
      : "Running";
    const tag = this.#latency.send(j);
    this.#truth[j]!.set(i, { phase, tag, at });
    const state: DeploymentState = {
      deviceId: deviceId(i),
      namespace: this.#namespace,
      deployment: deploymentName(j),
      generation: 1,
      phase,
      lastError: tag,
      lastEventAt: at,
    };
    await this.#sim.put(
      i,
      Buckets.deviceState,
      keys.deviceState(state.deviceId, { namespace: this.#namespace, name: state.deployment }),
      JSON.stringify(state),
    );
  }

  /** The aggregate deployment `j` must have by the truth, `unreachable` of its devices silent. */
  expected(j: number, unreachable = 0): Aggregate {
    const want: Aggregate = {
      matchedDeviceCount: this.#matched[j]!.length,
      succeeded: 0,
      failed: 0,
      pending: 0,
      unreachable,
      lastError: null,
    };
    let newest: [number, Written] | undefined;
    for (const [i, s] of this.#truth[j]!) {
      if (s.phase === "Running") want.succeeded++;
      if (s.phase === "Failed") want.failed++;
      if (!newest || s.at > newest[1].at) newest = [i, s];
    }
    want.pending = want.matchedDeviceCount - want.succeeded - want.failed;
    if (newest) {
      want.lastError = { deviceId: deviceId(newest[0]), message: newest[1].tag, at: newest[1].at };
    }
    return want;
  }

  /**
   * How many deployments' aggregates (`got`) are exactly the truth, and the first three that
   * are not (`d-3 want {…} got {…}`).
   */
  check(
    got: (j: number) => Aggregate | undefined,
    unreachable: (j: number) => number = () => 0,
  ): { exact: number; mismatches: string[] } {
    let exact = 0;
    const mismatches: string[] = [];
    for (let j = 0; j < this.#matched.length; j++) {
      const want = this.expected(j, unreachable(j));
      const have = got(j);
      if (have && aggregateEquals(have, want)) exact++;
      else if (mismatches.length < 3) {
        mismatches.push(
          `${deploymentName(j)} want ${JSON.stringify(want)} got ${JSON.stringify(have)}`,
        );
      }
    }
    return { exact, mismatches };
  }
}
