/**
 * The `Device` custom resource (kube source): one per device, named by its deviceId, its
 * labels made valid for Kubernetes, its inventory in `spec`, liveness in `status`. Pure.
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { API_GROUP, API_VERSION } from "../core/deployment.ts";
import { type DeviceInfo, Inventory } from "../core/device_info.ts";
import { identifierSchema, validateIdentifier } from "../core/ids.ts";
import { labelKeyProblem, Labels, labelValueProblem } from "../core/selector.ts";
import { canonicalJson } from "../core/spec_hash.ts";
import type { InstanceConflict } from "../core/agent_instances.ts";

/** The kind of the Device custom resource. */
export const DEVICE_KIND = "Device";

/** Annotation holding, as JSON, the original key and value of every label that had to change. */
export const ORIGINAL_LABELS_ANNOTATION = `${API_GROUP}/original-labels`;

/** Longest label value, and longest name part of a label key. */
export const LABEL_VALUE_MAX = 63;
/** Longest label key prefix (a DNS subdomain). */
export const LABEL_PREFIX_MAX = 253;
/** Longest label key: prefix, '/', name. */
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

/** `spec` of a Device: what its agent reports about the machine. */
export const DeviceSpec = z.object({ inventory: Inventory });
export type DeviceSpec = z.infer<typeof DeviceSpec>;

/** The conditions of a Device; one per `type` (a list-map in the CRD). */
export const DeviceConditions = z.array(Condition);

/** `status` of a Device, written by the operator. */
export const DeviceStatus = z.object({
  /** Time of the last heartbeat, RFC 3339. */
  lastSeen: z.iso.datetime({ offset: true }).optional(),
  conditions: DeviceConditions.optional(),
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
  metadata: { name: string; labels: Labels; annotations?: Record<string, string> };
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

/** Original key and value of a label whose Kubernetes form differs. */
export interface OriginalLabel {
  key: string;
  value: string;
}

/** Result of sanitizeLabels. */
export interface SanitizedLabels {
  /** Valid Kubernetes labels, one per input label. */
  labels: Labels;
  /** Sanitized key → original key and value, for the labels whose key or value changed. */
  changed: Record<string, OriginalLabel>;
}

const HASH_LENGTH = 8;

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, HASH_LENGTH);
}

const NOT_ALNUM_ENDS = /^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g;

/** `text` cut to `max` characters with `-<hash of source>` at its end, ends alphanumeric. */
function withHash(text: string, source: string, max: number): string {
  const hash = shortHash(source);
  const head = text.slice(0, max - HASH_LENGTH - 1).replace(NOT_ALNUM_ENDS, "");
  return head === "" ? hash : `${head}-${hash}`;
}

/**
 * A label value or key name part: invalid characters (per code point) become '-', the ends are
 * trimmed to alphanumerics, and a result over 63 characters is cut with a hash of the original
 * so two long values sharing a prefix stay distinct. A non-empty original that leaves nothing
 * becomes its hash, so it stays distinguishable from an empty value.
 */
function sanitizeName(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9._-]/gu, "-").replace(NOT_ALNUM_ENDS, "");
  if (cleaned.length > LABEL_VALUE_MAX) return withHash(cleaned, text, LABEL_VALUE_MAX);
  return cleaned === "" && text !== "" ? shortHash(text) : cleaned;
}

/** A key prefix as a lowercase DNS subdomain, or "" when nothing usable is left. */
function sanitizePrefix(prefix: string): string {
  const labels = prefix.toLowerCase().replace(/[^a-z0-9.-]/gu, "-").split(".")
    .map((part) => part.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, ""))
    .filter((part) => part !== "");
  const joined = labels.join(".");
  return joined.length > LABEL_PREFIX_MAX ? withHash(joined, prefix, LABEL_PREFIX_MAX) : joined;
}

function splitKey(key: string): { prefix: string | undefined; name: string } {
  const slash = key.lastIndexOf("/");
  return slash < 0
    ? { prefix: undefined, name: key }
    : { prefix: key.slice(0, slash), name: key.slice(slash + 1) };
}

function joinKey(prefix: string | undefined, name: string): string {
  return prefix ? `${prefix}/${name}` : name;
}

function sanitizeKey(key: string): { prefix: string | undefined; name: string } {
  const { prefix, name } = splitKey(key);
  const cleanPrefix = prefix === undefined ? undefined : sanitizePrefix(prefix);
  const cleanName = sanitizeName(name);
  // A key needs a name; an empty one (key "", "a/") is named by the hash of the whole key.
  return { prefix: cleanPrefix, name: cleanName === "" ? shortHash(key) : cleanName };
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Makes a device's labels valid Kubernetes labels, deterministically. Valid labels are kept
 * as they are; an invalid value or key is rewritten (see sanitizeName; a key's prefix becomes
 * a lowercase DNS subdomain). A rewritten key that lands on a key already taken gets a hash of
 * its original, so no label is lost. `changed` maps each rewritten label's Kubernetes key to
 * its original key and value.
 */
export function sanitizeLabels(labels: Readonly<Record<string, string>>): SanitizedLabels {
  const entries = Object.entries(labels).sort(([a], [b]) => byCodePoint(a, b));
  const taken = new Set(entries.map(([key]) => key).filter((key) => !labelKeyProblem(key)));
  const out: Labels = {};
  const changed: Record<string, OriginalLabel> = {};
  for (const [key, value] of entries) {
    let newKey = key;
    if (labelKeyProblem(key)) {
      const { prefix, name } = sanitizeKey(key);
      newKey = joinKey(prefix, name);
      for (let attempt = 0; taken.has(newKey); attempt++) {
        const source = attempt === 0 ? key : `${key}#${attempt}`;
        newKey = joinKey(prefix, withHash(`${name}-`, source, LABEL_VALUE_MAX));
      }
      taken.add(newKey);
    }
    const newValue = labelValueProblem(value) ? sanitizeName(value) : value;
    out[newKey] = newValue;
    if (newKey !== key || newValue !== value) changed[newKey] = { key, value };
  }
  const sortedLabels = Object.fromEntries(
    Object.entries(out).sort(([a], [b]) => byCodePoint(a, b)),
  );
  const sortedChanged = Object.fromEntries(
    Object.entries(changed).sort(([a], [b]) => byCodePoint(a, b)),
  );
  return { labels: sortedLabels, changed: sortedChanged };
}

/**
 * The server-side-apply body of the Device for `info`: name = deviceId, sanitized labels, the
 * original-labels annotation only when some label changed (so applying without it removes a
 * stale one), inventory as spec. No status: that goes through the status subresource.
 * @throws InvalidIdentifierError when the deviceId is not a DNS label
 */
export function deviceResource(info: DeviceInfo): DeviceApply {
  const { labels, changed } = sanitizeLabels(info.labels);
  const metadata: DeviceApply["metadata"] = {
    name: validateIdentifier("device id", info.deviceId),
    labels,
  };
  if (Object.keys(changed).length > 0) {
    metadata.annotations = { [ORIGINAL_LABELS_ANNOTATION]: canonicalJson(changed) };
  }
  return {
    apiVersion: API_VERSION,
    kind: DEVICE_KIND,
    metadata,
    spec: { inventory: info.inventory },
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
 * The status of a Device: last heartbeat time and the Reachable condition, other conditions
 * of `previous` kept.
 */
export function deviceStatus(
  reachable: boolean,
  lastSeenMs: number | undefined,
  now: number,
  previous?: DeviceStatus,
): DeviceStatus {
  const before = previous?.conditions?.find((c) => c.type === REACHABLE);
  const status: DeviceStatus = {
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
  return {
    ...previous,
    conditions: setCondition(
      previous?.conditions,
      agentConflictCondition(conflict, now, before),
    ),
  };
}
