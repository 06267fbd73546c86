/**
 * The operator's in-memory picture of the fleet: devices and their labels, when each was last
 * seen, deployments, what desired state exists, what devices reported and what status was
 * written. Its controllers share it; it decides nothing alone: the pure core functions do,
 * on what it holds.
 */
import {
  type Aggregate,
  computeAggregate,
  type DeploymentRef,
  type DeploymentState,
  type DeploymentStatus,
  type DesiredState,
  type DeviceWish,
  inScope,
  type InstanceConflict,
  type Labels,
  type LabelSelector,
  type RolloutStatus,
  type StoredDeployment,
  type TargetScope,
  targetScope,
} from "../core/mod.ts";
import { DeploymentMap } from "./deployment_map.ts";

/** A deployment targeting left off a device: `by` holds a host port it publishes. */
export interface Refusal {
  by: DeploymentRef;
  message: string;
  /** Since when, RFC 3339: the aggregate's lastError time. */
  at: string;
}

export class FleetView {
  /** deviceId → labels, from each device's info. */
  readonly devices = new Map<string, Labels>();
  /** deviceId → when the control plane last saw it, epoch ms on the operator's clock. */
  readonly lastSeen = new Map<string, number>();
  readonly deployments = new DeploymentMap<StoredDeployment>();
  /** deployment → deviceId → desired-state value present in the store. */
  readonly desired = new DeploymentMap<Map<string, DesiredState>>();
  /** deployment → deviceId → last report. */
  readonly states = new DeploymentMap<Map<string, DeploymentState>>();
  /** deployment → devices the selector matches now. */
  readonly targets = new DeploymentMap<Set<string>>();
  /** deviceId → which agent instance keeps the device while two run as it. */
  readonly agentConflicts = new Map<string, InstanceConflict>();
  /** deployment → deviceId → why targeting does not write it there (a host-port conflict). */
  readonly refusals = new DeploymentMap<Map<string, Refusal>>();
  /** deployment → status last written (or found at start), so unchanged ones are not rewritten. */
  readonly statuses = new DeploymentMap<DeploymentStatus>();
  /** deployment → its progressive rollout's status, as the rollout controller decided it. */
  readonly rollouts = new DeploymentMap<RolloutStatus>();
  /**
   * deployment → deviceId → what a progressive rollout gives the device (null: nothing;
   * undefined, or absent: it keeps what it holds, as the rollout has not decided on it).
   */
  readonly rolloutWishes = new DeploymentMap<Map<string, DeviceWish>>();
  /** namespace → the device selector an admin bound it to (core/tenancy.ts). */
  readonly bindings = new Map<string, string>();
  /** deployment → why it targets no device whatever the devices' labels (said on its status). */
  readonly scopeProblems = new DeploymentMap<string>();
  /** Whether a namespace with no binding may target every device (development only). */
  readonly allowUnbound: boolean;

  /** @param options.allowUnbound see {@link allowUnbound} @default false */
  constructor(options: { allowUnbound?: boolean } = {}) {
    this.allowUnbound = options.allowUnbound ?? false;
  }

  readonly #scopes = new WeakMap<
    StoredDeployment,
    { binding: string | undefined; scope: TargetScope }
  >();
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

  /** The devices `deployment` may target: its selector within its namespace's binding. */
  scopeOf(deployment: StoredDeployment): TargetScope {
    const namespace = deployment.metadata.namespace;
    const binding = this.bindings.get(namespace);
    // Asked once per deployment on every label change: the binding is not parsed each time.
    const cached = this.#scopes.get(deployment);
    if (cached && cached.binding === binding) return cached.scope;
    const scope = targetScope(deployment.spec, {
      namespace,
      binding,
      allowUnbound: this.allowUnbound,
    });
    this.#scopes.set(deployment, { binding, scope });
    return scope;
  }

  /** Selects the deployment's devices now and remembers them in {@link targets}. */
  resolveTargets(ref: DeploymentRef): Set<string> {
    const deployment = this.deployments.get(ref);
    const targets = new Set<string>();
    const scope = deployment ? this.scopeOf(deployment) : undefined;
    if (deployment && scope?.selectors) {
      for (const [id, labels] of this.#labelled(deployment.spec.targetSelector)) {
        if (inScope(scope, labels)) targets.add(id);
      }
    }
    if (scope?.problem !== undefined) this.scopeProblems.set(ref, scope.problem);
    else this.scopeProblems.delete(ref);
    if (deployment) this.targets.set(ref, targets);
    else this.targets.delete(ref);
    this.pruneStates([ref]);
    return targets;
  }

  /**
   * Whether a device's report on a deployment is kept: the device holds desired state of it,
   * or the deployment exists and targets the device (or its targets are not resolved yet).
   * Any other report is of something the device was never given; kept, it would let any
   * device grow the operator's memory with made-up deployment names.
   */
  wantsState(ref: DeploymentRef, deviceId: string): boolean {
    if (this.desired.get(ref)?.has(deviceId)) return true;
    if (!this.deployments.has(ref)) return false;
    return this.targets.get(ref)?.has(deviceId) ?? true;
  }

  /** Forgets the reports of `refs` that {@link wantsState} no longer wants. */
  pruneStates(refs: Iterable<DeploymentRef> = [...this.states.keys()]): void {
    for (const ref of refs) {
      for (const deviceId of [...this.states.get(ref)?.keys() ?? []]) {
        if (!this.wantsState(ref, deviceId)) this.setState(undefined, ref, deviceId);
      }
    }
  }

  *#labelled(selector: LabelSelector): Iterable<readonly [string, Labels]> {
    for (const id of this.#candidates(selector)) {
      const labels = this.devices.get(id);
      if (labels !== undefined) yield [id, labels];
    }
  }

  desiredOf(ref: DeploymentRef): Map<string, DesiredState> {
    let map = this.desired.get(ref);
    if (!map) {
      map = new Map();
      this.desired.set(ref, map);
    }
    return map;
  }

  /** Records a desired-state value present in the store; undefined: none. */
  setDesired(ref: DeploymentRef, deviceId: string, value: DesiredState | undefined): void {
    if (value) this.desiredOf(ref).set(deviceId, value);
    else {
      const map = this.desired.get(ref);
      map?.delete(deviceId);
      if (map?.size === 0) this.desired.delete(ref);
    }
  }

  /** Records a device's last report for a deployment; undefined: none. */
  setState(state: DeploymentState | undefined, ref: DeploymentRef, deviceId: string): void {
    let map = this.states.get(ref);
    if (state) {
      if (!map) this.states.set(ref, map = new Map());
      map.set(deviceId, state);
    } else {
      map?.delete(deviceId);
      if (map?.size === 0) this.states.delete(ref);
    }
  }

  /** Deployments whose targets include the device. */
  deploymentsTargeting(deviceId: string): DeploymentRef[] {
    return [...this.targets].filter(([, devices]) => devices.has(deviceId)).map(([ref]) => ref);
  }

  /** The deployment's aggregate at `now`; undefined when it does not exist. */
  aggregate(ref: DeploymentRef, now: number, staleAfterMs: number): Aggregate | undefined {
    const deployment = this.deployments.get(ref);
    if (!deployment) return undefined;
    const states = this.states.get(ref);
    const refusals = this.refusals.get(ref);
    return computeAggregate({
      generation: deployment.metadata.generation,
      matched: this.targets.get(ref) ?? [],
      stateOf: (deviceId) => states?.get(deviceId),
      lastSeenOf: (deviceId) => this.lastSeen.get(deviceId),
      refusalOf: (deviceId) => refusals?.get(deviceId),
      now,
      staleAfterMs,
      targetingProblem: this.scopeProblems.get(ref),
    });
  }
}
