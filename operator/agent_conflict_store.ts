/**
 * The port the operator tells a device's agents through while two of them run as that
 * device (DESIGN.md §2 `desired-state`, key `<deviceId>.agent-conflict`: the one place an
 * agent reads). The NATS adapter is `nats_agent_conflicts.ts`.
 * @module
 */
import type { InstanceConflict } from "../core/mod.ts";

/** Where the decision on each device's agent conflict is kept. */
export interface AgentConflictStore {
  /** The decisions stored now, by device id; unreadable ones are left out. */
  load(): Promise<Map<string, InstanceConflict>>;
  put(conflict: InstanceConflict): Promise<void>;
  delete(deviceId: string): Promise<void>;
}
