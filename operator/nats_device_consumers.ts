/**
 * The {@link DeviceConsumerStore} on NATS: one durable push consumer per device on the
 * `desired-state` stream, kept in the broker's memory: on disk it would cost as much memory
 * (~35 KB of broker memory per consumer either way, measured on nats-server 2.10) and make a
 * restarting broker load every one of them (~5 s per 10,000), while one lost with a restart
 * is re-created when the operator reconnects, and its agent reads its few keys again.
 *
 * Subjects it uses: `$JS.API.CONSUMER.CREATE.KV_desired-state.device-<id>.$KV.desired-state.<id>.>`,
 * `$JS.API.CONSUMER.DELETE.KV_desired-state.device-<id>`, `$JS.API.CONSUMER.NAMES.KV_desired-state`
 * and, subscribed, `$JS.EVENT.ADVISORY.CONSUMER.DELETED.KV_desired-state.*`.
 * @module
 */
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  jetstreamManager,
} from "@nats-io/jetstream";
import { Buckets, deviceConsumer, deviceOfConsumer } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { untilAborted } from "../adapters/timers.ts";
import { hasJetStreamCode, JetStreamCodes } from "../adapters/nats/mod.ts";
import type { DeviceConsumerStore } from "./device_consumers.ts";

const STREAM = `KV_${Buckets.desiredState}`;

/** Options of {@link NatsDeviceConsumers}. */
export interface NatsDeviceConsumersOptions {
  nc: NatsConnection;
  log: Logger;
  /**
   * The idle heartbeat each consumer sends its device when nothing changes; two missed ones
   * tell the agent its consumer is gone. Every connected device costs one message per interval.
   */
  heartbeatMs: number;
}

export class NatsDeviceConsumers implements DeviceConsumerStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #heartbeatMs: number;

  constructor(options: NatsDeviceConsumersOptions) {
    this.#nc = options.nc;
    this.#log = options.log;
    this.#heartbeatMs = options.heartbeatMs;
  }

  async ensure(deviceId: string): Promise<void> {
    const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    const config = this.#config(deviceId);
    try {
      // Creating one that exists with this very config changes nothing and succeeds.
      await jsm.consumers.add(STREAM, config);
    } catch (error) {
      if (!hasJetStreamCode(error, JetStreamCodes.ConsumerExists)) throw error;
      // Made with other settings (an older operator, another heartbeat): made anew.
      this.#log.info(
        `Re-creating the desired-state consumer of device ${deviceId}: ${error.message}`,
      );
      await this.remove(deviceId);
      await jsm.consumers.add(STREAM, config);
    }
  }

  async remove(deviceId: string): Promise<void> {
    const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    try {
      await jsm.consumers.delete(STREAM, deviceConsumer(deviceId).name);
    } catch (error) {
      if (!hasJetStreamCode(error, JetStreamCodes.ConsumerNotFound)) throw error;
    }
  }

  async list(): Promise<Set<string>> {
    const devices = new Set<string>();
    // Names only, page by page: a consumer's full info is ~1 KB, times every device.
    for (let offset = 0;;) {
      const reply = await this.#nc.request(
        `$JS.API.CONSUMER.NAMES.${STREAM}`,
        JSON.stringify({ offset }),
        { timeout: 10_000 },
      );
      const page = reply.json<ConsumerNamesPage>();
      if (page.error) {
        throw new Error(`cannot list the consumers of ${STREAM}: ${page.error.description}`);
      }
      const names = page.consumers ?? [];
      for (const name of names) {
        const deviceId = deviceOfConsumer(name);
        if (deviceId) devices.add(deviceId);
      }
      offset += names.length;
      if (names.length === 0 || offset >= page.total) return devices;
    }
  }

  async *deletions(signal: AbortSignal): AsyncIterable<string> {
    const sub = this.#nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.DELETED.${STREAM}.*`);
    try {
      for await (const m of untilAborted(sub, signal)) {
        const deviceId = deviceOfConsumer(m.subject.slice(m.subject.lastIndexOf(".") + 1));
        if (deviceId) yield deviceId;
      }
    } finally {
      sub.unsubscribe();
    }
  }

  async *reconnects(signal: AbortSignal): AsyncIterable<void> {
    for await (const s of untilAborted(this.#nc.status(), signal)) {
      if (s.type === "reconnect") yield;
    }
  }

  #config(deviceId: string): Partial<ConsumerConfig> {
    const consumer = deviceConsumer(deviceId);
    return {
      durable_name: consumer.name,
      deliver_subject: consumer.deliverSubject,
      filter_subject: consumer.filterSubject,
      deliver_policy: DeliverPolicy.LastPerSubject,
      // The agent reads everything again after a gap; nothing to acknowledge, no flow control.
      ack_policy: AckPolicy.None,
      idle_heartbeat: nanos(this.#heartbeatMs),
      mem_storage: true,
    };
  }
}

/** A page of `$JS.API.CONSUMER.NAMES.<stream>`. */
interface ConsumerNamesPage {
  total: number;
  consumers?: string[] | null;
  error?: { code: number; description: string };
}
