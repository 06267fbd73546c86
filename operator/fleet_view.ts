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
  type LabelSelector,
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

  /** label key → value → devices carrying it: a selector looks only at its candidates. */
  readonly #byLabel = new Map<string, Map<string, Set<string>>>();

  /** Sets a device's labels; true when they changed. */
  setDevice(deviceId: string, labels: Labels): boolean {
    const previous = this.devices.get(deviceId);
    const changed = previous === undefined || JSON.stringify(previous) !== JSON.stringify(labels);
    if (previous !== undefined && changed) this.#index(deviceId, previous, false);
    this.devices.set(deviceId, labels);
    if (changed) this.#index(deviceId, labels, true);
    return changed;
  }

  /** Forgets a device; true when it was known. */
  removeDevice(deviceId: string): boolean {
    const previous = this.devices.get(deviceId);
    if (previous === undefined) return false;
    this.#index(deviceId, previous, false);
    return this.devices.delete(deviceId);
  }

  #index(deviceId: string, labels: Labels, add: boolean): void {
    for (const [key, value] of Object.entries(labels)) {
      let values = this.#byLabel.get(key);
      if (!values) {
        if (!add) continue;
        this.#byLabel.set(key, values = new Map());
      }
      let ids = values.get(value);
      if (!ids) {
        if (!add) continue;
        values.set(value, ids = new Set());
      }
      if (add) ids.add(deviceId);
      else {
        ids.delete(deviceId);
        if (ids.size === 0) values.delete(value);
        if (values.size === 0) this.#byLabel.delete(key);
      }
    }
  }

  /**
   * The devices that can match `selector`: the smallest set its `matchLabels` or `In`
   * terms name, or every device when it has neither. The selector still decides.
   */
  #candidates(selector: LabelSelector): Iterable<string> {
    let best: Set<string> | undefined;
    const consider = (ids: Set<string>) => {
      if (best === undefined || ids.size < best.size) best = ids;
    };
    for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
      consider(this.#byLabel.get(key)?.get(value) ?? new Set());
    }
    for (const req of selector.matchExpressions ?? []) {
      if (req.operator !== "In") continue;
      const values = this.#byLabel.get(req.key);
      const ids = new Set<string>();
      for (const value of req.values ?? []) {
        for (const id of values?.get(value) ?? []) ids.add(id);
      }
      consider(ids);
    }
    return best ?? this.devices.keys();
  }

  resolveTargets(ref: string): Set<string> {
    const deployment = this.deployments.get(ref);
    const targets = deployment
      ? selectDevices(
        deployment.spec.targetSelector,
        this.#labelled(deployment.spec.targetSelector),
      )
      : new Set<string>();
    if (deployment) this.targets.set(ref, targets);
    else this.targets.delete(ref);
    return targets;
  }

  *#labelled(selector: LabelSelector): Iterable<readonly [string, Labels]> {
    for (const id of this.#candidates(selector)) {
      const labels = this.devices.get(id);
      if (labels !== undefined) yield [id, labels];
    }
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
