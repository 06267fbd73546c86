/**
 * Two agents configured with the same device id: how the control plane tells them apart and
 * which one keeps the device. Each agent process has its own instance id, carried in its
 * heartbeats. A restart shows as a new instance that the old one never follows; two agents
 * running at once show as instances that keep following each other. Pure.
 * @module
 */
import * as z from "zod";
import { identifierSchema } from "./ids.ts";

/** An agent process's id: random, made at start, never reused. */
export const InstanceId = z.string().regex(
  /^[a-z0-9]{6,16}$/,
  "instance ids are 6-16 lowercase letters and digits",
);

/** A new instance id for this process. */
export function newInstanceId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...crypto.getRandomValues(new Uint8Array(8))].map((b) => alphabet[b % 36]).join("");
}

/** When the control plane first and last saw one instance, on its own clock (epoch ms). */
export interface InstanceSeen {
  firstSeen: number;
  lastSeen: number;
}

/** Instance id → when it was seen, for one device. */
export type DeviceInstances = ReadonlyMap<string, InstanceSeen>;

/**
 * The decision while two or more agents run as one device: `owner` keeps managing the
 * containers, each of `standby` leaves them alone until the conflict ends. Written by the
 * operator to the device's `agent-conflict` key in `desired-state` (the one thing a device
 * reads), deleted when the conflict ends.
 */
export const InstanceConflict = z.object({
  deviceId: identifierSchema("device id"),
  owner: InstanceId,
  standby: z.array(InstanceId).min(1),
  /** When the control plane noticed, ISO 8601 on its clock. */
  since: z.string(),
});
export type InstanceConflict = z.infer<typeof InstanceConflict>;

/** Records a heartbeat of `instanceId` seen at `at`. */
export function recordSighting(
  instances: DeviceInstances,
  instanceId: string,
  at: number,
): Map<string, InstanceSeen> {
  const next = new Map(instances);
  const seen = instances.get(instanceId);
  next.set(instanceId, {
    firstSeen: seen?.firstSeen ?? at,
    lastSeen: Math.max(seen?.lastSeen ?? at, at),
  });
  return next;
}

/** The instances seen within `staleAfterMs` of `now`; the others have stopped. */
export function liveInstances(
  instances: DeviceInstances,
  now: number,
  staleAfterMs: number,
): Map<string, InstanceSeen> {
  return new Map([...instances].filter(([, seen]) => now - seen.lastSeen <= staleAfterMs));
}

/**
 * Whether two instances run at the same time: each was seen after the other first was. An
 * agent that restarted is never seen after its successor appeared, so it is no conflict.
 */
function overlap(a: InstanceSeen, b: InstanceSeen): boolean {
  return a.lastSeen > b.firstSeen && b.lastSeen > a.firstSeen;
}

/**
 * The conflict among the live instances of one device, or undefined when at most one runs.
 * The owner stays who it was (`previous`) while it is part of the conflict, so an operator
 * restart or a third instance never moves the containers; otherwise the instance seen first
 * owns the device and every newer one stands by.
 */
export function judgeInstances(
  deviceId: string,
  live: DeviceInstances,
  previous: InstanceConflict | undefined,
  now: number,
): InstanceConflict | undefined {
  const entries = [...live];
  const involved = entries.filter(([id, seen]) =>
    entries.some(([other, otherSeen]) => other !== id && overlap(seen, otherSeen))
  );
  if (involved.length < 2) return undefined;
  involved.sort(([a, x], [b, y]) => x.firstSeen - y.firstSeen || a.localeCompare(b));
  const ids = involved.map(([id]) => id);
  const owner = previous && ids.includes(previous.owner) ? previous.owner : ids[0]!;
  const standby = ids.filter((id) => id !== owner).sort();
  const unchanged = previous?.owner === owner &&
    previous.standby.join() === standby.join();
  return {
    deviceId,
    owner,
    standby,
    since: unchanged ? previous.since : new Date(now).toISOString(),
  };
}

/** What one instance must do under `conflict`. */
export function instanceRole(
  conflict: InstanceConflict | undefined,
  instanceId: string,
): "alone" | "owner" | "standby" {
  if (!conflict) return "alone";
  if (conflict.owner === instanceId) return "owner";
  return conflict.standby.includes(instanceId) ? "standby" : "alone";
}
