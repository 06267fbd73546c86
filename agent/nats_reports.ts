/** ReportSink on the NATS KV buckets of DESIGN.md §2. */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { Buckets } from "../core/mod.ts";
import { openBucket } from "../adapters/nats/mod.ts";
import type { ReportSink } from "./reporter.ts";

export class NatsReportSink implements ReportSink {
  readonly #info: KV;
  readonly #state: KV;
  readonly #heartbeat: KV;

  private constructor(info: KV, state: KV, heartbeat: KV) {
    this.#info = info;
    this.#state = state;
    this.#heartbeat = heartbeat;
  }

  /** Binds the report buckets without creating them: the operator owns their lifecycle. */
  static async open(nc: NatsConnection): Promise<NatsReportSink> {
    return new NatsReportSink(
      await openBucket(nc, Buckets.deviceInfo),
      await openBucket(nc, Buckets.deviceState),
      await openBucket(nc, Buckets.deviceHeartbeat),
    );
  }

  async putDeviceInfo(key: string, info: unknown): Promise<void> {
    await this.#info.put(key, JSON.stringify(info));
  }
  async putState(key: string, state: unknown): Promise<void> {
    await this.#state.put(key, JSON.stringify(state));
  }
  async deleteState(key: string): Promise<void> {
    await this.#state.delete(key);
  }
  async putHeartbeat(key: string, heartbeat: unknown): Promise<void> {
    await this.#heartbeat.put(key, JSON.stringify(heartbeat));
  }
}
