import { validateIdentifier } from "./ids.ts";

/** The JetStream KV buckets, DESIGN.md §2. */
export const Buckets = {
  desiredState: "desired-state",
  deviceInfo: "device-info",
  deviceState: "device-state",
  deviceHeartbeat: "device-heartbeat",
  deployments: "fleet-deployments",
  deploymentStatus: "fleet-deployment-status",
  /** The label registry: what targeting matches, written by people, never by devices. */
  deviceLabels: "device-labels",
  /** The operator's record of each deployment's last workloads, one key per revision. */
  revisions: "fleet-revisions",
} as const;
export type BucketName = typeof Buckets[keyof typeof Buckets];

/** Revisions kept per key: a few where an agent or a person may look back, else one. */
export const BUCKET_HISTORY: Record<BucketName, number> = {
  [Buckets.desiredState]: 3,
  [Buckets.deviceInfo]: 1,
  [Buckets.deviceState]: 3,
  [Buckets.deviceHeartbeat]: 1,
  [Buckets.deployments]: 5,
  [Buckets.deploymentStatus]: 1,
  [Buckets.deviceLabels]: 3,
  [Buckets.revisions]: 1,
};

/**
 * The buckets devices write, each its own keys (DESIGN.md §2). Their streams refuse rollup
 * headers: a `Nats-Rollup: all` on a device's own key (what a KV purge sends too, as `sub`)
 * would delete every other key of the bucket, that is every other device's reports.
 */
export const REPORT_BUCKETS: readonly BucketName[] = [
  Buckets.deviceInfo,
  Buckets.deviceState,
  Buckets.deviceHeartbeat,
];

/** A deployment's identity: the namespace is part of every key. */
export interface DeploymentRef {
  namespace: string;
  name: string;
}

export function refKey(ref: DeploymentRef): string {
  return `${ref.namespace}.${ref.name}`;
}

function check(deviceId: string, ref?: DeploymentRef): void {
  validateIdentifier("device id", deviceId);
  if (ref) {
    validateIdentifier("namespace", ref.namespace);
    validateIdentifier("deployment name", ref.name);
  }
}

const AGENT_CONFLICT_TOKEN = "agent-conflict";

export const keys = {
  /** `desired-state`: `<deviceId>.<namespace>.<deployment>` */
  desiredState(deviceId: string, ref: DeploymentRef): string {
    check(deviceId, ref);
    return `${deviceId}.${ref.namespace}.${ref.name}`;
  },
  /**
   * `desired-state`: `<deviceId>.agent-conflict`, the control plane's word to a device's
   * agents while two of them run as that device. Two tokens: never a deployment's key.
   */
  agentConflict(deviceId: string): string {
    check(deviceId);
    return `${deviceId}.${AGENT_CONFLICT_TOKEN}`;
  },
  /** Key filter for every device's `agent-conflict` key. */
  agentConflicts(): string {
    return `*.${AGENT_CONFLICT_TOKEN}`;
  },
  /** Watch filter for one device's desired state. */
  desiredStateOfDevice(deviceId: string): string {
    check(deviceId);
    return `${deviceId}.>`;
  },
  deviceInfo(deviceId: string): string {
    check(deviceId);
    return `info.${deviceId}`;
  },
  deviceState(deviceId: string, ref: DeploymentRef): string {
    check(deviceId, ref);
    return `state.${deviceId}.${ref.namespace}.${ref.name}`;
  },
  deviceStatesOfDevice(deviceId: string): string {
    check(deviceId);
    return `state.${deviceId}.>`;
  },
  heartbeat(deviceId: string): string {
    check(deviceId);
    return `heartbeat.${deviceId}`;
  },
  /** `device-labels`: `labels.<deviceId>`, the device's entry in the label registry. */
  deviceLabels(deviceId: string): string {
    check(deviceId);
    return `labels.${deviceId}`;
  },
  deployment(ref: DeploymentRef): string {
    check("x", ref);
    return refKey(ref);
  },
  deploymentStatus(ref: DeploymentRef): string {
    check("x", ref);
    return refKey(ref);
  },
  /** `fleet-revisions`: `<namespace>.<deployment>.<number>`, one revision of a deployment. */
  revision(ref: DeploymentRef, number: number): string {
    check("x", ref);
    return `${refKey(ref)}.${number}`;
  },
  /** Key filter for every kept revision of a deployment. */
  revisionsOf(ref: DeploymentRef): string {
    check("x", ref);
    return `${refKey(ref)}.*`;
  },
};

/**
 * Request/reply subject of a command to one device, asked by `principal` (DESIGN.md §9):
 * `device-commands.<deviceId>.<verb>.<principal>`.
 */
export function commandSubject(deviceId: string, verb: string, principal: string): string {
  check(deviceId);
  if (!/^[a-z][a-z0-9-]*$/.test(verb)) {
    throw new Error(`Invalid command verb ${JSON.stringify(verb)}`);
  }
  validateIdentifier("principal", principal);
  return `device-commands.${deviceId}.${verb}.${principal}`;
}

function tokens(key: string, count: number, prefix?: string): string[] | undefined {
  const parts = key.split(".");
  if (prefix !== undefined) {
    if (parts.shift() !== prefix) return undefined;
  }
  return parts.length === count && parts.every((p) => p.length > 0) ? parts : undefined;
}

/** Inverse helpers: undefined for a key that does not have the bucket's shape. */
export const parseKey = {
  desiredState(key: string): { deviceId: string; ref: DeploymentRef } | undefined {
    const t = tokens(key, 3);
    return t && { deviceId: t[0]!, ref: { namespace: t[1]!, name: t[2]! } };
  },
  agentConflict(key: string): string | undefined {
    const t = tokens(key, 2);
    return t?.[1] === AGENT_CONFLICT_TOKEN ? t[0] : undefined;
  },
  deviceInfo(key: string): string | undefined {
    return tokens(key, 1, "info")?.[0];
  },
  deviceState(key: string): { deviceId: string; ref: DeploymentRef } | undefined {
    const t = tokens(key, 3, "state");
    return t && { deviceId: t[0]!, ref: { namespace: t[1]!, name: t[2]! } };
  },
  heartbeat(key: string): string | undefined {
    return tokens(key, 1, "heartbeat")?.[0];
  },
  deviceLabels(key: string): string | undefined {
    return tokens(key, 1, "labels")?.[0];
  },
  deployment(key: string): DeploymentRef | undefined {
    const t = tokens(key, 2);
    return t && { namespace: t[0]!, name: t[1]! };
  },
};
