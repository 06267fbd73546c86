/**
 * The port the operator reads device reports through (DESIGN.md §2: `device-info`,
 * `device-state`, `device-heartbeat`, each written by its own agent). Values arrive parsed;
 * what cannot be read is logged and left out by the adapter (`nats_report_feed.ts`).
 * @module
 */
import type { DeploymentRef, DeploymentState, DeviceInfo } from "../core/mod.ts";

/** Marks in each stream of a {@link ReportFeed}, in order with its events. */
export type FeedMark =
  /** A new complete read starts: what follows until `ready` is stored data, not live. */
  | { type: "restart" }
  /** Every value stored when the read began has been delivered; what follows is live. */
  | { type: "ready"; restarted: boolean };

/** A device's info written or deleted, or a mark. */
export type DeviceInfoEvent =
  | { type: "put"; info: DeviceInfo }
  | { type: "delete"; deviceId: string }
  | FeedMark;

/** A device's report on one deployment written or deleted, or a mark. */
export type DeviceStateEvent =
  /** The device and deployment are those of the key the agent wrote to. */
  | { type: "put"; deviceId: string; ref: DeploymentRef; state: DeploymentState }
  | { type: "delete"; deviceId: string; ref: DeploymentRef }
  | FeedMark;

export type HeartbeatEvent =
  /**
   * A device sent a heartbeat. `brokerAt` is when the broker stored it, on the broker's
   * clock; the time the device wrote in it is not passed on (DESIGN.md §9 "Time").
   * `instance` is the sending agent's instance id (absent from older agents).
   */
  | { type: "put"; deviceId: string; brokerAt: number; instance?: string }
  | FeedMark;

/** What devices report about themselves: each stream its current values, then its changes. */
export interface ReportFeed {
  deviceInfo(signal: AbortSignal): AsyncIterable<DeviceInfoEvent>;
  deviceStates(signal: AbortSignal): AsyncIterable<DeviceStateEvent>;
  heartbeats(signal: AbortSignal): AsyncIterable<HeartbeatEvent>;
}
