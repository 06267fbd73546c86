/**
 * The convergence latency of state writes. Each write carries a tag `w:<index>`, its index among
 * its deployment's writes, and a strictly increasing `lastEventAt`, so an aggregate's `lastError`
 * names the newest write folded in: every write of that deployment up to it is in, and each one's
 * latency is the time from its send to the arrival of that aggregate.
 */
import type { Aggregate } from "../core/mod.ts";
import { percentile } from "./_figures.ts";

export class WriteLatency {
  /** Per deployment: the send time of each write, by its index. */
  readonly #sentAt: number[][];
  /** Per deployment: how many of its writes the latest aggregate includes. */
  readonly #included: number[];
  readonly #latencies: number[] = [];
  /** performance.now() when the latest aggregate arrived. */
  lastChangeAt = performance.now();

  constructor(deployments: number) {
    this.#sentAt = Array.from({ length: deployments }, () => []);
    this.#included = new Array<number>(deployments).fill(0);
  }

  /** Notes a write to deployment `j`, sent now. @returns the tag it carries. */
  send(j: number): string {
    const sent = this.#sentAt[j]!;
    sent.push(performance.now());
    return `w:${sent.length - 1}`;
  }

  /** Notes an aggregate of deployment `j` that arrived at `now`; other deployments are not ours. */
  seen(j: number, aggregate: Aggregate, now = performance.now()): void {
    if (!Number.isInteger(j) || j < 0 || j >= this.#included.length) return;
    this.lastChangeAt = now;
    const tag = aggregate.lastError?.message;
    const upTo = tag?.startsWith("w:") ? Number(tag.slice(2)) + 1 : 0;
    for (let w = this.#included[j]!; w < upTo; w++) {
      this.#latencies.push(now - this.#sentAt[j]![w]!);
    }
    if (upTo > this.#included[j]!) this.#included[j] = upTo;
  }

  /** The writes the aggregates include. */
  get included(): number {
    return this.#included.reduce((s, x) => s + x, 0);
  }

  /** Writes folded in per second, over the write phase or until the last aggregate if later. */
  processedRate(startedAt: number, endedAt: number): number {
    return this.included / (Math.max(this.lastChangeAt - startedAt, endedAt - startedAt) / 1000);
  }

  /** The latency (ms) at fraction `p` of the writes folded in. */
  latency(p: number): number {
    this.#latencies.sort((a, b) => a - b);
    return percentile(this.#latencies, p);
  }
}
