/**
 * The {@link ReportFeed} on NATS: the `device-info`, `device-state` and `device-heartbeat`
 * buckets of DESIGN.md §2, parsed at this edge. An unreadable value is logged and left out;
 * a key of another shape is not a report and is skipped.
 */
import {
  Buckets,
  DeploymentState,
  DeviceInfo,
  Heartbeat,
  parseJsonWith,
  parseKey,
} from "../core/mod.ts";
import type {
  DeviceInfoEvent,
  DeviceStateEvent,
  HeartbeatEvent,
  ReportFeed,
} from "./report_feed.ts";
import { type NatsWatchSettings, watchWithRestarts } from "./_nats_watch.ts";

/** Device reports from their three buckets, one watch each. */
export class NatsReportFeed implements ReportFeed {
  readonly #settings: NatsWatchSettings;

  constructor(settings: NatsWatchSettings) {
    this.#settings = settings;
  }

  async *deviceInfo(signal: AbortSignal): AsyncIterable<DeviceInfoEvent> {
    const log = this.#settings.log;
    for await (const event of watchWithRestarts(this.#settings, Buckets.deviceInfo, signal)) {
      if (event.type === "restart" || event.type === "ready") {
        yield event;
        continue;
      }
      const deviceId = parseKey.deviceInfo(event.key);
      if (!deviceId) continue;
      if (event.type === "delete") {
        yield { type: "delete", deviceId };
        continue;
      }
      let info: DeviceInfo;
      try {
        info = parseJsonWith(DeviceInfo, event.value, `device info of ${deviceId}`);
      } catch (error) {
        log.warn(`Ignoring unreadable device info: ${(error as Error).message}`);
        continue;
      }
      if (info.deviceId !== deviceId) {
        log.warn(`Ignoring device info at "${event.key}": it names device "${info.deviceId}"`);
        continue;
      }
      yield { type: "put", info };
    }
  }

  async *deviceStates(signal: AbortSignal): AsyncIterable<DeviceStateEvent> {
    for await (const event of watchWithRestarts(this.#settings, Buckets.deviceState, signal)) {
      if (event.type === "restart" || event.type === "ready") {
        yield event;
        continue;
      }
      const parsed = parseKey.deviceState(event.key);
      if (!parsed) continue;
      if (event.type === "delete") {
        yield { type: "delete", ...parsed };
        continue;
      }
      try {
        const state = parseJsonWith(
          DeploymentState,
          event.value,
          `state reported by ${parsed.deviceId}`,
        );
        yield { type: "put", ...parsed, state };
      } catch (error) {
        this.#settings.log.warn(`Ignoring an unreadable report: ${(error as Error).message}`);
      }
    }
  }

  async *heartbeats(signal: AbortSignal): AsyncIterable<HeartbeatEvent> {
    const bucket = Buckets.deviceHeartbeat;
    for await (const event of watchWithRestarts(this.#settings, bucket, signal)) {
      if (event.type === "restart" || event.type === "ready") {
        yield event;
        continue;
      }
      // A heartbeat that expires or is deleted says nothing new: silence is judged by age.
      if (event.type !== "put") continue;
      const deviceId = parseKey.heartbeat(event.key);
      if (!deviceId) continue;
      let heartbeat: Heartbeat;
      try {
        // The device's own time in it is not passed on (DESIGN.md §9 "Time").
        heartbeat = parseJsonWith(Heartbeat, event.value, `heartbeat of ${deviceId}`);
      } catch (error) {
        this.#settings.log.warn(`Ignoring an unreadable heartbeat: ${(error as Error).message}`);
        continue;
      }
      const { instance } = heartbeat;
      yield { type: "put", deviceId, brokerAt: event.created, ...(instance ? { instance } : {}) };
    }
  }
}
