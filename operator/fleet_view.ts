/**
 * The operator's in-memory picture of the fleet: devices and their labels, heartbeats,
 * deployments, what desired state exists, and what devices reported. It decides nothing
 * alone; the pure core functions do, on what it holds.
 */
import {
  computeAggregate,
  type DeploymentState,
  type DesiredState,
  type Labels,
  refKey,
  selectDevices,
  type StoredDeployment,
} from "../core/mod.ts";
import type { Aggregate } from "../core/mod.ts";

export class FleetView {
  readonly devices = new Map<string, Labels>();
  readonly lastSeen = new Map<string, number>();
  readonly deployments = new Map<string, StoredDeployment>();
  /** refKey → deviceId → desired-state value present in KV. */
  readonly desired = new Map<string, Map<string, DesiredState>>();
  /** refKey → deviceId → last report. */
  readonly states = new Map<string, Map<string, DeploymentState>>();
  /** refKey → devices the selector matches now. */
  readonly targets = new Map<string, Set<string>>();

  /** Sets a device's labels; true when they changed. */
  setDevice(deviceId: string, labels: Labels): boolean {
    const previous = this.devices.get(deviceId);
    this.devices.set(deviceId, labels);
    return previous === undefined || JSON.stringify(previous) !== JSON.stringify(labels);
  }

  resolveTargets(ref: string): Set<string> {
    const deployment = this.deployments.get(ref);
    const targets = deployment
      ? selectDevices(deployment.spec.targetSelector, this.devices)
      : new Set<string>();
    if (deployment) this.targets.set(ref, targets);
    else this.targets.delete(ref);
    return targets;
  }

  desiredOf(ref: string): Map<string, DesiredState> {
    let map = this.desired.get(ref);
    if (!map) {
      map = new Map();
      this.desired.set(ref, map);
    }
    return map;
  }

  setDesired(ref: string, deviceId: string, value: DesiredState | undefined): void {
    if (value) this.desiredOf(ref).set(deviceId, value);
    else {
      const map = this.desired.get(ref);
      map?.delete(deviceId);
      if (map?.size === 0) this.desired.delete(ref);
    }
  }

  setState(state: DeploymentState | undefined, ref: string, deviceId: string): void {
    let map = this.states.get(ref);
    if (state) {
      if (!map) this.states.set(ref, map = new Map());
      map.set(deviceId, state);
    } else {
      map?.delete(deviceId);
    }
  }

  /** Deployments whose targets include the device. */
  deploymentsTargeting(deviceId: string): string[] {
    return [...this.targets].filter(([, devices]) => devices.has(deviceId)).map(([ref]) => ref);
  }

  aggregate(ref: string, now: number, staleAfterMs: number): Aggregate | undefined {
    const deployment = this.deployments.get(ref);
    if (!deployment) return undefined;
    const states = this.states.get(ref);
    return computeAggregate({
      generation: deployment.metadata.generation,
      matched: this.targets.get(ref) ?? [],
      stateOf: (deviceId) => states?.get(deviceId),
      lastSeenOf: (deviceId) => this.lastSeen.get(deviceId),
      now,
      staleAfterMs,
    });
  }

  static key(deployment: StoredDeployment): string {
    return refKey(deployment.metadata);
  }
}
