/**
 * Liveness judged on the control plane's clock (DESIGN.md §9 "Time"): a device's own
 * timestamps are informative only, since a device may run hours off until NTP syncs. Pure.
 * @module
 */

/** One heartbeat as the operator received it. */
export interface HeartbeatSighting {
  /** The broker's timestamp of the heartbeat entry, epoch ms. */
  brokerAt: number;
  /** The operator's clock when the entry reached it, epoch ms. */
  receivedAt: number;
  /**
   * True for a live update; false for a value delivered by a (re)read of what the bucket
   * holds, which may have been written long ago.
   */
  live: boolean;
}

/**
 * When the control plane last saw the device, in the operator's epoch ms. A live update was
 * written just now: its receive time is used, so a broker whose clock is off does not make
 * every device look stale. A stored value can be old: the broker's timestamp says how old,
 * but never later than now.
 */
export function lastSeenAt(sighting: HeartbeatSighting): number {
  return sighting.live ? sighting.receivedAt : Math.min(sighting.brokerAt, sighting.receivedAt);
}

/** Whether a device last seen at `lastSeen` (undefined: never) is unreachable at `now`. */
export function isStale(lastSeen: number | undefined, now: number, staleAfterMs: number): boolean {
  return lastSeen === undefined || now - lastSeen > staleAfterMs;
}
