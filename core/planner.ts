/**
 * The agent's decision: given what the device should run and what podman shows, which
 * containers to create, start or remove, and how each deployment is doing. Pure.
 */
import { type DeploymentRef, refKey } from "./keys.ts";
import type { PodmanService, Score } from "./score.ts";
import type { Phase, ServiceReport } from "./deployment_state.ts";
import { specHash } from "./spec_hash.ts";

/** Container labels; only containers with MANAGED_BY_LABEL=MANAGED_BY are ever touched. */
export const ContainerLabels = {
  managedBy: "fleet.nationtech.io/managed-by",
  deviceId: "fleet.nationtech.io/device-id",
  namespace: "fleet.nationtech.io/namespace",
  deployment: "fleet.nationtech.io/deployment",
  service: "fleet.nationtech.io/service",
  specHash: "fleet.nationtech.io/spec-hash",
  generation: "fleet.nationtech.io/generation",
  /** On a host shell's container (not managed: no reconcile pass touches it): the device id. */
  hostShell: "fleet.nationtech.io/host-shell",
} as const;
export const MANAGED_BY = "fleet-agent";

/** A port the container runtime shows as published: `hostPort` up to `hostPort + range - 1`. */
export interface PublishedPort {
  hostPort: number;
  containerPort: number;
  protocol: string;
  /** How many consecutive ports the entry covers. @default 1 */
  range?: number;
}

/** What the agent needs to know of a container podman reports. */
export interface ObservedContainer {
  id: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  state: string;
  exitCode: number;
  /** Epoch ms of its last start, by this host's clock; absent when never started. */
  startedAt?: number | undefined;
  /** Its published ports; absent when the runtime does not say. */
  ports?: readonly PublishedPort[];
}

/**
 * One deployment's desired state as the agent holds it: runnable, or why not. `revision` is the
 * hash of the workload as received (core/revisions.ts revisionHash), when it could be read;
 * `minReadyMs` the deployment's minReadySeconds, when it has one; `retry` the desired state's.
 */
export type DesiredEntry =
  | {
    ref: DeploymentRef;
    generation: number;
    score: Score;
    revision?: string;
    minReadyMs?: number;
    retry?: number;
  }
  | { ref: DeploymentRef; generation: number; error: string; revision?: string };

export type Action =
  | {
    kind: "create";
    ref: DeploymentRef;
    service: PodmanService;
    containerName: string;
    labels: Record<string, string>;
    reason: string;
  }
  | {
    kind: "start";
    ref: DeploymentRef;
    containerId: string;
    containerName: string;
    reason: string;
  }
  | {
    kind: "remove";
    ref?: DeploymentRef;
    containerId: string;
    containerName: string;
    reason: string;
  };

export interface Assessment {
  ref: DeploymentRef;
  generation: number;
  phase: Phase;
  error: string | null;
  /** The desired entry's revision, when known. */
  revision?: string;
  /** How each service does, once the agent has looked (the planner does not). */
  services?: ServiceReport[];
}

/** The revision of `entry`, to spread into its assessment. */
function revisionOf(entry: DesiredEntry): { revision?: string } {
  return entry.revision === undefined ? {} : { revision: entry.revision };
}

/**
 * What the planner made of one service's container: `missing` (to be created), `starting`
 * (created, to be started), `transient` (podman is changing its state), `running`,
 * `finished` (exited 0 and its restart policy wants no restart: a job that is done),
 * `failed` (exited non-zero and no restart is due) or `exited` (exited against its restart
 * policy: to be recreated).
 */
export type ServiceCondition =
  | "missing"
  | "starting"
  | "transient"
  | "running"
  | "finished"
  | "failed"
  | "exited";

/** One service of a runnable desired deployment, as the planner saw it. */
export interface ServiceStatus {
  ref: DeploymentRef;
  generation: number;
  service: PodmanService;
  /** The service's spec hash (container label). */
  hash: string;
  /** The container that stands for the service; undefined when it is missing. */
  container: ObservedContainer | undefined;
  condition: ServiceCondition;
}

export interface Plan {
  /** Removals first, so a recreated container's name and ports are free. */
  actions: Action[];
  /** One per desired deployment. */
  assessments: Assessment[];
  /** One per service of every runnable desired deployment, in desired order. */
  services: ServiceStatus[];
}

export interface PlanInput {
  deviceId: string;
  desired: ReadonlyMap<string, DesiredEntry>;
  observed: readonly ObservedContainer[];
  /**
   * Deployments absent from `desired` whose containers must stay for now: everything the
   * agent has not confirmed gone by a complete read of its desired state.
   */
  retained: ReadonlySet<string>;
}

/**
 * Podman container name. `_` cannot occur in DNS labels, so names never collide; the device
 * id keeps several agents on one host (simulations, the demo) apart.
 */
export function containerName(deviceId: string, ref: DeploymentRef, service: string): string {
  return `fleet_${deviceId}_${ref.namespace}_${ref.name}_${service}`;
}

/** The hash that decides recreation: everything that shapes the container, not generation. */
export function serviceHash(ref: DeploymentRef, service: PodmanService): string {
  return specHash({ namespace: ref.namespace, deployment: ref.name, service });
}

export function containerLabels(
  deviceId: string,
  ref: DeploymentRef,
  generation: number,
  service: PodmanService,
): Record<string, string> {
  return {
    [ContainerLabels.managedBy]: MANAGED_BY,
    [ContainerLabels.deviceId]: deviceId,
    [ContainerLabels.namespace]: ref.namespace,
    [ContainerLabels.deployment]: ref.name,
    [ContainerLabels.service]: service.name,
    [ContainerLabels.specHash]: serviceHash(ref, service),
    [ContainerLabels.generation]: String(generation),
  };
}

const STARTABLE = new Set(["created", "configured", "initialized"]);
const TRANSIENT = new Set(["stopping", "restarting", "removing", "paused"]);

/** Whether an exited container is done according to its restart policy (no restart due). */
function exitIsFinal(service: PodmanService, exitCode: number): boolean {
  switch (service.restartPolicy) {
    case "no":
      return true;
    case "on-failure":
      return exitCode === 0;
    default:
      return false;
  }
}

function refOf(c: ObservedContainer): DeploymentRef | undefined {
  const namespace = c.labels[ContainerLabels.namespace];
  const name = c.labels[ContainerLabels.deployment];
  return namespace && name ? { namespace, name } : undefined;
}

/** Decides the actions for one tick. No-op when nothing changed. */
export function plan(input: PlanInput): Plan {
  const actions: Action[] = [];
  const creates: Action[] = [];
  const assessments: Assessment[] = [];
  const services: ServiceStatus[] = [];

  const managed = input.observed.filter((c) =>
    c.labels[ContainerLabels.managedBy] === MANAGED_BY &&
    c.labels[ContainerLabels.deviceId] === input.deviceId
  );
  const byDeployment = new Map<string, ObservedContainer[]>();
  for (const c of managed) {
    const ref = refOf(c);
    if (!ref) continue;
    const key = refKey(ref);
    byDeployment.set(key, [...(byDeployment.get(key) ?? []), c]);
  }

  for (const [key, containers] of byDeployment) {
    if (input.desired.has(key) || input.retained.has(key)) continue;
    for (const c of containers) {
      actions.push({
        kind: "remove",
        ...(refOf(c) ? { ref: refOf(c)! } : {}),
        containerId: c.id,
        containerName: c.name,
        reason: "its deployment is no longer assigned to this device",
      });
    }
  }

  for (const [key, entry] of input.desired) {
    const containers = byDeployment.get(key) ?? [];
    if ("error" in entry) {
      // Unrunnable spec: keep whatever runs (a bad update must not take a service down).
      assessments.push({
        ref: entry.ref,
        generation: entry.generation,
        phase: "Failed",
        error: entry.error,
        ...revisionOf(entry),
      });
      continue;
    }
    let phase: Phase = "Running";
    let error: string | null = null;
    const wanted = new Set<string>();
    for (const service of entry.score.data.services) {
      wanted.add(service.name);
      const hash = serviceHash(entry.ref, service);
      const name = containerName(input.deviceId, entry.ref, service.name);
      const mine = containers.filter((c) => c.labels[ContainerLabels.service] === service.name);
      const matching = mine.filter((c) => c.labels[ContainerLabels.specHash] === hash);
      // Of duplicates, keep a running one: removing it would be needless downtime.
      const current = matching.find((c) => c.state === "running") ?? matching[0];
      for (const c of mine) {
        if (c === current) continue;
        actions.push({
          kind: "remove",
          ref: entry.ref,
          containerId: c.id,
          containerName: c.name,
          reason: c.labels[ContainerLabels.specHash] === hash
            ? "duplicate container for the same service"
            : `service ${service.name} changed`,
        });
      }
      const status = (condition: ServiceCondition) =>
        services.push({
          ref: entry.ref,
          generation: entry.generation,
          service,
          hash,
          container: current,
          condition,
        });
      const create = (reason: string) =>
        creates.push({
          kind: "create",
          ref: entry.ref,
          service,
          containerName: name,
          labels: containerLabels(input.deviceId, entry.ref, entry.generation, service),
          reason,
        });
      if (!current) {
        create(
          mine.length > 0
            ? `service ${service.name} changed`
            : `service ${service.name} is not running`,
        );
        status("missing");
        if (phase !== "Failed") phase = "Pending";
        continue;
      }
      if (current.state === "running") {
        status("running");
        continue;
      }
      if (STARTABLE.has(current.state)) {
        actions.push({
          kind: "start",
          ref: entry.ref,
          containerId: current.id,
          containerName: current.name,
          reason: `service ${service.name} was created but not started`,
        });
        status("starting");
        if (phase !== "Failed") phase = "Pending";
        continue;
      }
      if (TRANSIENT.has(current.state)) {
        status("transient");
        if (phase !== "Failed") phase = "Pending";
        continue;
      }
      // exited, stopped, dead, unknown
      if (exitIsFinal(service, current.exitCode)) {
        if (current.exitCode !== 0) {
          phase = "Failed";
          error = `service ${service.name} exited with code ${current.exitCode}`;
        }
        status(current.exitCode === 0 ? "finished" : "failed");
        continue;
      }
      actions.push({
        kind: "remove",
        ref: entry.ref,
        containerId: current.id,
        containerName: current.name,
        reason: `service ${service.name} exited with code ${current.exitCode}`,
      });
      create(`service ${service.name} exited with code ${current.exitCode}; restarting it`);
      status("exited");
      // One exit is not a failure yet: a crash loop is (the agent's service health decides).
      if (phase !== "Failed") {
        phase = "Pending";
        if (current.exitCode !== 0) {
          error = `service ${service.name} exited with code ${current.exitCode}; restarting it`;
        }
      }
    }
    for (const c of containers) {
      const service = c.labels[ContainerLabels.service] ?? "";
      if (wanted.has(service)) continue;
      actions.push({
        kind: "remove",
        ref: entry.ref,
        containerId: c.id,
        containerName: c.name,
        reason: `service ${service || "(unnamed)"} is no longer part of the deployment`,
      });
    }
    assessments.push({
      ref: entry.ref,
      generation: entry.generation,
      phase,
      error,
      ...revisionOf(entry),
    });
  }
  return { actions: [...actions, ...creates], assessments, services };
}
