/**
 * Host ports as targeting sees them: on each device a deployment targets, which deployments
 * select it or have desired state there, and what the pure rule (`decidePortConflicts`)
 * says of them. Each workload's ports are parsed once.
 * @module
 */
import {
  decidePortConflicts,
  type DeploymentRef,
  type HostPort,
  matchesSelector,
  type PortClaimant,
  type PortConflict,
  publishedPorts,
  type ScoreEnvelope,
  type StoredDeployment,
} from "../core/mod.ts";
import { DeploymentSet } from "./deployment_map.ts";
import type { FleetView } from "./fleet_view.ts";

export function sameRef(a: DeploymentRef, b: DeploymentRef): boolean {
  return a.namespace === b.namespace && a.name === b.name;
}

/** Decides port conflicts on the devices a deployment targets; see the module doc. */
export class PortClaims {
  readonly #view: FleetView;
  /** Parsed ports per workload object: the view keeps one per deployment and stored value. */
  readonly #ports = new WeakMap<ScoreEnvelope, readonly HostPort[]>();

  constructor(view: FleetView) {
    this.#view = view;
  }

  #portsOf(score: ScoreEnvelope): readonly HostPort[] {
    let ports = this.#ports.get(score);
    if (!ports) this.#ports.set(score, ports = publishedPorts(score));
    return ports;
  }

  /**
   * The devices among `targets` where the deployment must not be written, each with the
   * conflict that keeps it off. None for a deployment that publishes no host port.
   */
  conflictsOf(ref: DeploymentRef, targets: Iterable<string>): Map<string, PortConflict> {
    const view = this.#view;
    const conflicts = new Map<string, PortConflict>();
    const deployment = view.deployments.get(ref);
    if (!deployment || this.#portsOf(deployment.spec.score).length === 0) return conflicts;
    // Only deployments publishing host ports can take one.
    const others = [...view.deployments].filter(([other, d]) =>
      !sameRef(other, ref) && this.#portsOf(d.spec.score).length > 0
    );
    for (const deviceId of targets) {
      const labels = view.devices.get(deviceId);
      if (labels === undefined) continue;
      const claimants = [this.#claimant(ref, deployment, deviceId, true)];
      const counted = new DeploymentSet([ref]);
      for (const [other, d] of others) {
        if (!matchesSelector(d.spec.targetSelector, labels)) continue;
        claimants.push(this.#claimant(other, d, deviceId, true));
        counted.add(other);
      }
      // Desired state still on the device holds its ports, whether or not it is wanted there.
      for (const [other, values] of view.desired) {
        const held = values.get(deviceId);
        if (counted.has(other) || !held || this.#portsOf(held.score).length === 0) continue;
        const d = view.deployments.get(other);
        claimants.push(
          d ? this.#claimant(other, d, deviceId, false) : {
            ref: other,
            createdAt: undefined,
            wants: undefined,
            holds: this.#portsOf(held.score),
          },
        );
      }
      if (claimants.length < 2) continue;
      const conflict = decidePortConflicts(claimants).find((c) => sameRef(c.ref, ref));
      if (conflict) conflicts.set(deviceId, conflict);
    }
    return conflicts;
  }

  #claimant(
    ref: DeploymentRef,
    deployment: StoredDeployment,
    deviceId: string,
    selects: boolean,
  ): PortClaimant {
    const held = this.#view.desired.get(ref)?.get(deviceId);
    return {
      ref,
      createdAt: deployment.metadata.creationTimestamp,
      wants: selects ? this.#portsOf(deployment.spec.score) : undefined,
      holds: held ? this.#portsOf(held.score) : undefined,
    };
  }
}
