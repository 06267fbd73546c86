/**
 * Host-port conflicts between deployments on one device: which deployments the operator must
 * not write there, and why. Pure.
 *
 * The rule, per device: deployments are considered in order, those whose desired state the
 * device already has (incumbents) first, then by creation time (unknown last), then by
 * namespace and name. A deployment is blocked when one of the host ports its workload
 * publishes overlaps
 * - a port of a deployment admitted before it, or
 * - a port the device's current desired state of another deployment publishes (that one's
 *   containers hold it until the operator rewrites or removes it), unless the deployment
 *   itself holds an overlapping port there too (state from before this rule; order decides).
 *
 * So an incumbent keeps its place even when a deployment created earlier starts selecting the
 * device later, and a blocked deployment is written once what blocked it is gone from the
 * device (deleted, retargeted or moved to other ports): the operator re-decides then.
 *
 * Container names cannot conflict: Fleet names a container
 * `fleet_<device>_<namespace>_<deployment>_<service>` and none of those may contain `_`.
 * @module
 */
import type { Deployment } from "./deployment.ts";
import type { DeploymentRef } from "./keys.ts";
import { type Labels, matchesSelector } from "./selector.ts";
import {
  formatHostPort,
  type HostPort,
  type ParsedPort,
  parsePort,
  PodmanV0Data,
  portsOverlap,
  type ScoreEnvelope,
} from "./score.ts";

/**
 * The host ports a workload publishes; none for a workload this build does not know (an
 * unknown type or malformed data), which therefore conflicts with nothing.
 */
export function publishedPorts(score: ScoreEnvelope): ParsedPort[] {
  if (score.type !== "PodmanV0") return [];
  const data = PodmanV0Data.safeParse(score.data);
  if (!data.success) return [];
  return data.data.services.flatMap((service) => service.ports.map(parsePort));
}

/** The message a blocked deployment fails with on the device. */
export function conflictMessage(port: HostPort, by: DeploymentRef): string {
  return `port ${formatHostPort(port)} is already used by deployment ${by.namespace}/${by.name}`;
}

/** One deployment as far as one device's ports go. */
export interface PortClaimant {
  ref: DeploymentRef;
  /** The deployment's creation time (RFC 3339); undefined when unknown. */
  createdAt: string | undefined;
  /** Ports its current workload publishes; undefined when it does not select the device. */
  wants: readonly HostPort[] | undefined;
  /** Ports of its desired state the device has now; undefined when the device has none. */
  holds: readonly HostPort[] | undefined;
}

/** A deployment that must not be written to the device: `port` is taken by `by`. */
export interface PortConflict {
  ref: DeploymentRef;
  port: HostPort;
  by: DeploymentRef;
  /** {@link conflictMessage} of the two. */
  message: string;
}

function createdMs(claimant: PortClaimant): number {
  const ms = Date.parse(claimant.createdAt ?? "");
  return Number.isNaN(ms) ? Infinity : ms;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Incumbents first, then creation time (unknown last), then namespace and name. */
export function compareClaimants(a: PortClaimant, b: PortClaimant): number {
  const incumbent = Number(b.holds !== undefined) - Number(a.holds !== undefined);
  if (incumbent !== 0) return incumbent;
  const ageA = createdMs(a);
  const ageB = createdMs(b);
  if (ageA !== ageB) return ageA < ageB ? -1 : 1;
  return compareText(a.ref.namespace, b.ref.namespace) || compareText(a.ref.name, b.ref.name);
}

function overlapping(ports: readonly HostPort[] | undefined, port: HostPort): boolean {
  return ports?.some((p) => portsOverlap(p, port)) ?? false;
}

/**
 * Decides which deployments selecting one device are blocked there (see the module doc).
 * @param claimants every deployment that selects the device or whose desired state it has
 * @returns the blocked ones, in the order they were considered, each with the first
 *   conflicting port and the deployment holding it
 */
export function decidePortConflicts(claimants: readonly PortClaimant[]): PortConflict[] {
  const ordered = [...claimants].sort(compareClaimants);
  const admitted: PortClaimant[] = [];
  const blocked: PortConflict[] = [];
  for (const claimant of ordered) {
    if (claimant.wants === undefined) continue;
    const conflict = firstConflict(claimant, claimant.wants, ordered, admitted);
    if (conflict) blocked.push(conflict);
    else admitted.push(claimant);
  }
  return blocked;
}

function firstConflict(
  claimant: PortClaimant,
  wants: readonly HostPort[],
  ordered: readonly PortClaimant[],
  admitted: readonly PortClaimant[],
): PortConflict | undefined {
  for (const port of wants) {
    for (const other of ordered) {
      if (other === claimant) continue;
      const takes = admitted.includes(other) && overlapping(other.wants, port);
      const keeps = overlapping(other.holds, port) && !overlapping(claimant.holds, port);
      if (takes || keeps) {
        return {
          ref: claimant.ref,
          port,
          by: other.ref,
          message: conflictMessage(port, other.ref),
        };
      }
    }
  }
  return undefined;
}

/** A conflict `fleet apply` can see coming: `port` is taken by `by` on `devices`. */
export interface ForeseenConflict {
  port: HostPort;
  by: DeploymentRef;
  devices: string[];
}

function isRef(a: DeploymentRef, b: DeploymentRef): boolean {
  return a.namespace === b.namespace && a.name === b.name;
}

/**
 * Where `applied` would be refused by the rule of {@link decidePortConflicts}, judged from the
 * deployments and device labels a client can read (not the desired state itself): what the
 * deployments stored now would run, decided by creation order, is taken as what each device
 * holds.
 * @param existing the deployments as stored now, `applied`'s current version among them if any
 * @returns one entry per port and holder, devices in the order given
 */
export function foreseePortConflicts(
  applied: Deployment,
  existing: readonly Deployment[],
  devices: Iterable<readonly [string, Readonly<Labels>]>,
): ForeseenConflict[] {
  const wants = publishedPorts(applied.spec.score);
  if (wants.length === 0) return [];
  const ref = applied.metadata;
  const current = existing.find((d) => isRef(d.metadata, ref));
  const others = existing.filter((d) => !isRef(d.metadata, ref));
  const portsOf = new Map(existing.map((d) => [d, publishedPorts(d.spec.score)]));
  const foreseen = new Map<string, ForeseenConflict>();
  for (const [deviceId, labels] of devices) {
    if (!matchesSelector(applied.spec.targetSelector, labels)) continue;
    const running = existing.filter((d) => matchesSelector(d.spec.targetSelector, labels));
    const refused = decidePortConflicts(running.map((d) => ({
      ref: d.metadata,
      createdAt: d.metadata.creationTimestamp,
      wants: portsOf.get(d),
      holds: undefined,
    })));
    const holds = (d: Deployment) =>
      running.includes(d) && !refused.some((r) => isRef(r.ref, d.metadata))
        ? portsOf.get(d)
        : undefined;
    const claimants: PortClaimant[] = others
      .filter((d) => running.includes(d))
      .map((d) => ({
        ref: d.metadata,
        createdAt: d.metadata.creationTimestamp,
        wants: portsOf.get(d),
        holds: holds(d),
      }));
    claimants.push({
      ref,
      createdAt: current?.metadata.creationTimestamp,
      wants,
      holds: current && holds(current),
    });
    const conflict = decidePortConflicts(claimants).find((c) => isRef(c.ref, ref));
    if (!conflict) continue;
    const key = `${formatHostPort(conflict.port)} ${conflict.by.namespace}/${conflict.by.name}`;
    const { namespace, name } = conflict.by;
    const entry = foreseen.get(key) ??
      { port: conflict.port, by: { namespace, name }, devices: [] };
    entry.devices.push(deviceId);
    foreseen.set(key, entry);
  }
  return [...foreseen.values()];
}
