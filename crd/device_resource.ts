/**
 * The `Device` custom resource (kube source): one per device, named by its deviceId; its labels
 * are the label registry, set by people (the operator sets only the device-id label); what the
 * device reports (inventory, free text, its own labels) in `spec`, liveness in `status`. Pure.
 * @module
 */
import * as z from "zod";
import { API_VERSION } from "../core/deployment.ts";
import {
  DEVICE_ID_LABEL,
  type DeviceInfo,
  Inventory,
  withSelectableLabels,
} from "../core/device_info.ts";
import { withoutDeviceId } from "../core/device_labels.ts";
import { identifierSchema, validateIdentifier } from "../core/ids.ts";
import { LABEL_VALUE_MAX, Labels } from "../core/selector.ts";
import { InstanceConflict } from "../core/agent_instances.ts";

/** The kind of the Device custom resource. */
export const DEVICE_KIND = "Device";

/** Longest label key prefix (a DNS subdomain). */
export const LABEL_PREFIX_MAX = 253;
/** Longest label key: prefix, '/', name (63 characters, like a value). */
export const LABEL_KEY_MAX = LABEL_PREFIX_MAX + 1 + LABEL_VALUE_MAX;

const NAME_SOURCE = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
const PREFIX_SOURCE = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/**
 * A Kubernetes label value (possibly empty); the same rule as selector.ts's labelValueProblem,
 * spelled as a regex for CRD `pattern`s (RE2 and ECMAScript agree on it).
 */
export const LABEL_VALUE_PATTERN = new RegExp(`^(${NAME_SOURCE})?$`);
/** A Kubernetes label key, `[prefix/]name`; the prefix's 253-character limit is not in it. */
export const LABEL_KEY_PATTERN = new RegExp(`^(${PREFIX_SOURCE}/)?${NAME_SOURCE}$`);

/** Kubernetes metav1.Condition.type. */
const CONDITION_TYPE_PATTERN = new RegExp(
  `^(${PREFIX_SOURCE}/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`,
);
/** Kubernetes metav1.Condition.reason: CamelCase. */
const CONDITION_REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/** The values of a condition's `status`. */
export const ConditionStatuses = ["True", "False", "Unknown"] as const;
export type ConditionStatus = typeof ConditionStatuses[number];

/** Kubernetes `metav1.Condition` (same fields, limits and patterns). */
export const Condition = z.object({
  type: z.string().max(316).regex(CONDITION_TYPE_PATTERN, "type must be a qualified name"),
  status: z.enum(ConditionStatuses),
  reason: z.string().min(1).max(1024).regex(CONDITION_REASON_PATTERN, "reason must be CamelCase"),
  message: z.string().max(32768),
  lastTransitionTime: z.iso.datetime({ offset: true }),
  observedGeneration: z.number().int().nonnegative().optional(),
});
export type Condition = z.infer<typeof Condition>;

/**
 * `spec` of a Device: what its agent reports about the machine, and what a person wrote about
 * it that no selector matches.
 */
export const DeviceSpec = z.object({
  inventory: Inventory,
  /** Free text about the device. */
  description: z.string().optional(),
  /** Free text under label-like keys. */
  annotations: z.record(z.string(), z.string()).optional(),
  /** Labels whose value is not a Kubernetes label value, as configured on the device. */
  unselectableLabels: z.record(z.string(), z.string()).optional(),
  /**
   * The labels the device reports about itself (its agent's config), shown only: targeting
   * matches the object's own labels, which people set.
   */
  reportedLabels: z.record(z.string(), z.string()).optional(),
});
export type DeviceSpec = z.infer<typeof DeviceSpec>;

/**
 * The conditions of a status (a Device's, a Deployment's); one per `type`, a list-map keyed by
 * type in each CRD.
 */
export const Conditions = z.array(Condition);

/** `status` of a Device, written by the operator. */
export const DeviceStatus = z.object({
  /** Time of the last heartbeat, RFC 3339. */
  lastSeen: z.iso.datetime({ offset: true }).optional(),
  conditions: Conditions.optional(),
  /** Set while two or more agents run with this device's id: which one keeps the device. */
  agentConflict: InstanceConflict.omit({ deviceId: true }).optional(),
});
export type DeviceStatus = z.infer<typeof DeviceStatus>;

/** The metadata of a Device the operator reads back: its name is the deviceId. */
export const DeviceMetadata = z.object({
  name: identifierSchema("device id"),
  labels: Labels.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** A Device custom resource as read back from the API server (unknown fields ignored). */
export const DeviceResource = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(DEVICE_KIND),
  metadata: DeviceMetadata,
  spec: DeviceSpec,
  status: DeviceStatus.optional(),
});
export type DeviceResource = z.infer<typeof DeviceResource>;

/**
 * The server-side-apply body of a Device: everything the operator owns except status.
 * A type alias, not an interface, so it is assignable to `Record<string, unknown>` (what a
 * generic apply call takes).
 */
export type DeviceApply = {
  apiVersion: typeof API_VERSION;
  kind: typeof DEVICE_KIND;
  metadata: { name: string; labels: Labels };
  spec: DeviceSpec;
};

/** The condition type saying whether the device's heartbeat is fresh. */
export const REACHABLE = "Reachable";

/** Reasons of the Reachable condition. */
export const ReachableReasons = {
  HeartbeatFresh: "HeartbeatFresh",
  HeartbeatStale: "HeartbeatStale",
  NeverSeen: "NeverSeen",
} as const;
export type ReachableReason = typeof ReachableReasons[keyof typeof ReachableReasons];

/**
 * The server-side-apply body of the Device for `info`: name = deviceId, the device-id label as
 * its only label from the operator (the others are people's: the label registry), what the
 * device reports as spec: inventory, free text, its selectable labels as `reportedLabels` (an
 * older agent's free-text values go to `spec.unselectableLabels`, so the API server never
 * refuses them). No annotations: an apply without the older operator's `original-labels`
 * annotation removes it. No status: that goes through the status subresource.
 * @throws InvalidIdentifierError when the deviceId is not a DNS label
 */
export function deviceResource(info: DeviceInfo): DeviceApply {
  const { labels, unselectableLabels, description, annotations, inventory } = withSelectableLabels(
    info,
  );
  const reported = withoutDeviceId(labels);
  return {
    apiVersion: API_VERSION,
    kind: DEVICE_KIND,
    metadata: {
      name: validateIdentifier("device id", info.deviceId),
      labels: { [DEVICE_ID_LABEL]: info.deviceId },
    },
    spec: {
      inventory,
      ...(Object.keys(reported).length === 0 ? {} : { reportedLabels: reported }),
      ...(description === undefined ? {} : { description }),
      ...(annotations === undefined ? {} : { annotations }),
      ...(unselectableLabels === undefined ? {} : { unselectableLabels }),
    },
  };
}

/** Epoch milliseconds as Kubernetes writes times (RFC 3339, UTC, whole seconds). */
export function kubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * The Reachable condition. Messages stay the same while the state does, so a steady device
 * does not rewrite its status; lastTransitionTime moves only when `status` changes.
 * @param lastSeenMs epoch ms of the last heartbeat, undefined if none was ever seen
 * @param previous the Reachable condition currently in the status, if any
 */
export function reachableCondition(
  reachable: boolean,
  lastSeenMs: number | undefined,
  now: number,
  previous?: Condition,
): Condition {
  const status: ConditionStatus = reachable ? "True" : "False";
  let reason: ReachableReason;
  let message: string;
  if (reachable) {
    reason = ReachableReasons.HeartbeatFresh;
    message = "The agent's heartbeat is fresh";
  } else if (lastSeenMs === undefined) {
    reason = ReachableReasons.NeverSeen;
    message = "No heartbeat has ever been received from this device";
  } else {
    reason = ReachableReasons.HeartbeatStale;
    message = `No heartbeat since ${kubeTime(lastSeenMs)}`;
  }
  const keep = previous !== undefined && previous.type === REACHABLE && previous.status === status;
  return {
    type: REACHABLE,
    status,
    reason,
    message,
    lastTransitionTime: keep ? previous.lastTransitionTime : kubeTime(now),
  };
}

/** `conditions` with `condition` replacing the one of the same type, or appended. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  condition: Condition,
): Condition[] {
  const list = [...(conditions ?? [])];
  const at = list.findIndex((c) => c.type === condition.type);
  // Replaced in place: a stable order keeps an unchanged status byte-for-byte the same.
  if (at >= 0) list[at] = condition;
  else list.push(condition);
  return list;
}

/**
 * The status of a Device: last heartbeat time and the Reachable condition, the rest of
 * `previous` (other conditions, an agent conflict) kept.
 */
export function deviceStatus(
  reachable: boolean,
  lastSeenMs: number | undefined,
  now: number,
  previous?: DeviceStatus,
): DeviceStatus {
  const before = previous?.conditions?.find((c) => c.type === REACHABLE);
  const status: DeviceStatus = {
    ...previous,
    conditions: setCondition(
      previous?.conditions,
      reachableCondition(reachable, lastSeenMs, now, before),
    ),
  };
  if (lastSeenMs !== undefined) status.lastSeen = kubeTime(lastSeenMs);
  return status;
}

/** Condition type: True while two or more agents run with this device's id. */
export const AGENT_CONFLICT = "AgentConflict";

/** The AgentConflict condition for `conflict` (undefined: one agent). */
export function agentConflictCondition(
  conflict: InstanceConflict | undefined,
  now: number,
  previous?: Condition,
): Condition {
  const status: ConditionStatus = conflict ? "True" : "False";
  const keep = previous !== undefined && previous.type === AGENT_CONFLICT &&
    previous.status === status;
  return {
    type: AGENT_CONFLICT,
    status,
    reason: conflict ? "SeveralAgents" : "OneAgent",
    message: conflict
      ? `Agents ${
        [conflict.owner, ...conflict.standby].join(", ")
      } all run as this device: ${conflict.owner} keeps the containers, the others stand by. Give each machine its own device id, or stop the extra agent.`
      : "One agent runs as this device",
    lastTransitionTime: keep ? previous.lastTransitionTime : kubeTime(now),
  };
}

/** `previous` with its AgentConflict condition set for `conflict`, the rest kept. */
export function deviceConflictStatus(
  conflict: InstanceConflict | undefined,
  now: number,
  previous?: DeviceStatus,
): DeviceStatus {
  const before = previous?.conditions?.find((c) => c.type === AGENT_CONFLICT);
  const { agentConflict: _, ...rest } = previous ?? {};
  return {
    ...rest,
    conditions: setCondition(
      previous?.conditions,
      agentConflictCondition(conflict, now, before),
    ),
    ...(conflict
      ? {
        agentConflict: { owner: conflict.owner, standby: conflict.standby, since: conflict.since },
      }
      : {}),
  };
}
