/** The operator's targeting decisions: which devices a deployment selects, and what to write. Pure. */
import type { DesiredState } from "./deployment.ts";
import type { Labels, LabelSelector } from "./selector.ts";
import { matchesSelector } from "./selector.ts";
import { canonicalJson } from "./spec_hash.ts";

/** Device ids whose labels satisfy `selector`. */
export function selectDevices(
  selector: LabelSelector,
  devices: Iterable<readonly [string, Readonly<Labels>]>,
): Set<string> {
  const selected = new Set<string>();
  for (const [deviceId, labels] of devices) {
    if (matchesSelector(selector, labels)) selected.add(deviceId);
  }
  return selected;
}

/** What to change in `desired-state` for one deployment. */
export interface TargetDiff {
  /** Devices whose key is missing or holds a different value. */
  put: string[];
  /** Devices whose key must go: no longer targeted, or the deployment is gone. */
  remove: string[];
}

/**
 * Compares the keys a deployment has now (`current`, by device id) with what it should
 * have: `desired` on every device in `targets`. A steady state yields an empty diff.
 * `desired` undefined means the deployment was deleted: every key goes.
 */
export function diffTargets(
  current: ReadonlyMap<string, DesiredState>,
  targets: ReadonlySet<string>,
  desired: DesiredState | undefined,
): TargetDiff {
  const put: string[] = [];
  const remove: string[] = [];
  const wanted = desired === undefined ? undefined : canonicalJson(desired);
  for (const deviceId of current.keys()) {
    if (wanted === undefined || !targets.has(deviceId)) remove.push(deviceId);
  }
  if (wanted !== undefined) {
    for (const deviceId of targets) {
      const existing = current.get(deviceId);
      if (existing === undefined || canonicalJson(existing) !== wanted) put.push(deviceId);
    }
  }
  return { put: put.sort(), remove: remove.sort() };
}
