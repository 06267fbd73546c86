/** The operator's targeting decisions: which devices a deployment selects, and what to write. Pure. */
import { API_VERSION, type DesiredState, type StoredDeployment } from "./deployment.ts";
import { DEVICE_ID_LABEL } from "./device_info.ts";
import type { DeploymentRef } from "./keys.ts";
import { Score } from "./score.ts";
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
  if (desired === undefined) return diffPerDevice(current, new Set(), () => undefined);
  return diffPerDevice(current, targets, () => desired);
}

/**
 * What a device of a progressive rollout must hold: a value, `null` for none (its key goes),
 * or `undefined` while the rollout has not decided on it yet (its key stays as it is).
 */
export type DeviceWish = DesiredState | null | undefined;

/**
 * {@link diffTargets} when each device may be given a different value (a progressive rollout
 * gives some devices the new revision, others the stable one). Keys of devices no longer in
 * `targets` go. Each distinct value is serialized once, however many devices it is for.
 */
export function diffPerDevice(
  current: ReadonlyMap<string, DesiredState>,
  targets: ReadonlySet<string>,
  wish: (deviceId: string) => DeviceWish,
): TargetDiff {
  const put: string[] = [];
  const remove: string[] = [];
  const json = new Map<DesiredState, string>();
  const serialized = (value: DesiredState): string => {
    let text = json.get(value);
    if (text === undefined) json.set(value, text = canonicalJson(value));
    return text;
  };
  for (const deviceId of current.keys()) {
    if (!targets.has(deviceId) || wish(deviceId) === null) remove.push(deviceId);
  }
  for (const deviceId of targets) {
    const wanted = wish(deviceId);
    if (!wanted) continue;
    const existing = current.get(deviceId);
    if (existing === undefined || canonicalJson(existing) !== serialized(wanted)) {
      put.push(deviceId);
    }
  }
  return { put: put.sort(), remove: remove.sort() };
}

/**
 * The deployment to hold when its source has only a generation the operator refuses and the
 * operator knows no earlier one (it restarted since): the newest value desired state holds for
 * it, on exactly the devices holding one (selected by their device-id label). Devices keep
 * what they run (one holding an older value gets the newest, as the rollout meant), no other
 * device gets it, and its status goes on being reported. Undefined when no device holds a value
 * whose workload this operator can read.
 */
export function heldDeployment(
  ref: DeploymentRef,
  desired: ReadonlyMap<string, DesiredState> | undefined,
): StoredDeployment | undefined {
  let newest: DesiredState | undefined;
  for (const value of desired?.values() ?? []) {
    if (newest === undefined || value.generation > newest.generation) newest = value;
  }
  const score = Score.safeParse(newest?.score);
  if (newest === undefined || !desired || !score.success) return undefined;
  return {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { namespace: ref.namespace, name: ref.name, generation: newest.generation },
    spec: {
      targetSelector: {
        matchExpressions: [{ key: DEVICE_ID_LABEL, operator: "In", values: [...desired.keys()] }],
      },
      score: score.data,
      rollout: { strategy: "Immediate" },
    },
  };
}
