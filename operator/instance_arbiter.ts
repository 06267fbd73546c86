/**
 * The agent-conflict controller: notices two agents running with one device id (their
 * heartbeats carry different instance ids and keep following each other), decides which one
 * keeps the device (core `judgeInstances`) and tells them through the device's
 * `agent-conflict` key, which both read; the newer one stands by until the conflict ends.
 * The decision is kept in the {@link FleetView} so the device controller ignores the info a
 * standby agent publishes: targeting never flaps between two machines' labels.
 * @module
 */
import {
  type Clock,
  type InstanceConflict,
  type InstanceSeen,
  judgeInstances,
  liveInstances,
  recordSighting,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import type { AgentConflictStore } from "./agent_conflict_store.ts";
import type { FleetView } from "./fleet_view.ts";
import type { HeartbeatEvent } from "./report_feed.ts";

/** Options of {@link InstanceArbiter}. */
export interface InstanceArbiterOptions {
  view: FleetView;
  store: AgentConflictStore;
  clock: Clock;
  log: Logger;
  /** An instance silent for longer has stopped. */
  staleAfterMs: number;
  /** How often stopped instances are looked for and failed writes tried again. */
  scanIntervalMs: number;
  /** Called when a device's conflict starts, changes or ends (undefined). */
  conflictChanged: (deviceId: string, conflict: InstanceConflict | undefined) => void;
}

function sameDecision(a: InstanceConflict | undefined, b: InstanceConflict | undefined): boolean {
  return a?.owner === b?.owner && a?.standby.join() === b?.standby.join();
}

/** Watches instance ids in heartbeats and keeps each device's agent-conflict decision. */
export class InstanceArbiter {
  readonly #o: InstanceArbiterOptions;
  /**
   * deviceId → the one instance seen live, the usual case: a plain record, since a Map per
   * device would cost ~17 MB more at 100,000 devices.
   */
  readonly #lone = new Map<string, InstanceSeen & { id: string }>();
  /** deviceId → instances seen live, for the devices with more than one. */
  readonly #several = new Map<string, Map<string, InstanceSeen>>();
  /** Devices whose decision is not stored yet (a write failed). */
  readonly #unsynced = new Set<string>();
  /** When heartbeats started arriving live (operator clock), undefined before. */
  #liveSince: number | undefined;

  constructor(options: InstanceArbiterOptions) {
    this.#o = options;
  }

  /** Reads the decisions stored before a restart: the owner stays the owner. */
  async load(): Promise<void> {
    for (const [deviceId, conflict] of await this.#o.store.load()) {
      this.#o.view.agentConflicts.set(deviceId, conflict);
    }
  }

  onHeartbeat(event: HeartbeatEvent): void {
    if (event.type === "restart") return;
    const now = this.#o.clock.now();
    if (event.type === "ready") {
      this.#liveSince ??= now;
      return;
    }
    // A stored heartbeat says only who wrote last: judging needs instances seen taking turns.
    if (this.#liveSince === undefined || event.instance === undefined) return;
    const { deviceId, instance } = event;
    const lone = this.#lone.get(deviceId);
    if (lone?.id === instance && !this.#o.view.agentConflicts.has(deviceId)) {
      lone.lastSeen = now; // the usual case: the one agent of this device, again
      return;
    }
    this.#remember(deviceId, recordSighting(this.#seen(deviceId), instance, now));
    this.#judge(deviceId, now);
  }

  /** Writes every standing decision again: the store lost its keys (a wiped bucket). */
  rewriteAll(): void {
    for (const [deviceId, conflict] of this.#o.view.agentConflicts) {
      void this.#write(deviceId, conflict);
    }
  }

  /** Looks for stopped instances until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await every(this.#o.scanIntervalMs, signal, () => this.scan(), this.#o.clock);
  }

  /** Forgets instances gone silent and ends the conflicts they were part of. */
  scan(): void {
    const now = this.#o.clock.now();
    for (const [deviceId, seen] of this.#several) {
      const live = liveInstances(seen, now, this.#o.staleAfterMs);
      if (live.size < seen.size) this.#remember(deviceId, live);
    }
    for (const [deviceId, lone] of this.#lone) {
      if (now - lone.lastSeen > this.#o.staleAfterMs) this.#lone.delete(deviceId);
    }
    const devices = new Set([...this.#o.view.agentConflicts.keys(), ...this.#unsynced]);
    for (const deviceId of devices) this.#judge(deviceId, now);
  }

  #judge(deviceId: string, now: number): void {
    const { view, log, staleAfterMs } = this.#o;
    const previous = view.agentConflicts.get(deviceId);
    const live = liveInstances(this.#seen(deviceId), now, staleAfterMs);
    let next = judgeInstances(deviceId, live, previous, now);
    // A decision read at start stands until every instance had time to be seen again.
    if (!next && previous && now - (this.#liveSince ?? now) <= staleAfterMs) next = previous;
    if (!sameDecision(previous, next)) {
      if (next) view.agentConflicts.set(deviceId, next);
      else view.agentConflicts.delete(deviceId);
      if (next) {
        log.error(
          `Two or more agents are running as device ${deviceId}: instance ${next.owner} keeps ` +
            `managing its containers, instance(s) ${
              next.standby.join(", ")
            } stand by and touch nothing. ` +
            `Give each machine its own device id, or stop the extra agent.`,
          { device: deviceId },
        );
      } else {
        log.info(`Device ${deviceId} has one agent again; the agent conflict is over`, {
          device: deviceId,
        });
      }
      this.#o.conflictChanged(deviceId, next);
      this.#unsynced.add(deviceId);
    }
    if (this.#unsynced.has(deviceId)) void this.#write(deviceId, next);
  }

  /** The instances seen live of one device, as the core judges them. */
  #seen(deviceId: string): Map<string, InstanceSeen> {
    const lone = this.#lone.get(deviceId);
    if (!lone) return this.#several.get(deviceId) ?? new Map();
    return new Map([[lone.id, { firstSeen: lone.firstSeen, lastSeen: lone.lastSeen }]]);
  }

  #remember(deviceId: string, seen: ReadonlyMap<string, InstanceSeen>): void {
    this.#lone.delete(deviceId);
    this.#several.delete(deviceId);
    const [first] = seen;
    if (seen.size > 1) this.#several.set(deviceId, new Map(seen));
    else if (first) this.#lone.set(deviceId, { id: first[0], ...first[1] });
  }

  async #write(deviceId: string, conflict: InstanceConflict | undefined): Promise<void> {
    this.#unsynced.delete(deviceId);
    try {
      if (conflict) await this.#o.store.put(conflict);
      else await this.#o.store.delete(deviceId);
    } catch (error) {
      // Tried again at the next scan; the agents act on what they last read meanwhile.
      this.#unsynced.add(deviceId);
      this.#o.log.warn(
        `Could not tell device ${deviceId}'s agents about their conflict: ${
          (error as Error).message
        }`,
      );
    }
  }
}
