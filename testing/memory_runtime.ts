/**
 * Our ContainerRuntime port in memory, for the agent's tests: records calls, can be told to
 * fail, and holds containers as podman would list them. Containers can be made to exit, or
 * to be restarted as podman's restart policy would.
 */
import {
  type Clock,
  type ContainerGrants,
  ContainerLabels,
  containerLabels,
  containerName,
  type DeploymentRef,
  type HealthcheckResult,
  type ObservedContainer,
  parsePort,
  type PodmanService,
} from "../core/mod.ts";
import type { ContainerRuntime, ExecProcess, LastExit } from "../agent/runtime.ts";
import type { DataFrame } from "../core/device_sessions.ts";

/** A container as the memory runtime holds it: what podman lists, plus what it keeps. */
export interface MemoryContainer extends ObservedContainer {
  restartCount: number;
  /** What it wrote (for lastExit). */
  output: string;
  /** How its latest run ended, if it ended. */
  lastExitCode: number | undefined;
  /** What it was given of the host, from its service. */
  grants: ContainerGrants;
  /** Its service's healthcheck retries, when it has a healthcheck. */
  healthcheckRetries: number | undefined;
  /** Its healthcheck's verdict, as podman keeps it. */
  health: HealthcheckResult | undefined;
}

export class MemoryRuntime implements ContainerRuntime {
  readonly containers: MemoryContainer[] = [];
  /** `<method> <subject>` for every call but listManaged, restartCount and lastExit. */
  readonly calls: string[] = [];
  /** Images whose pull fails, with the error message. */
  readonly failPull = new Map<string, string>();
  /** Images whose create fails, with the error message. */
  readonly failCreate = new Map<string, string>();
  /** Container names whose removal fails. */
  readonly failRemove = new Set<string>();
  /** Container names whose healthcheck fails, with its output; every other one passes. */
  readonly failHealthcheck = new Map<string, string>();
  /** Stamps `startedAt`. */
  clock: Pick<Clock, "now">;
  readonly #deviceId: string;
  #nextId = 1;

  /**
   * @param deviceId the device whose containers {@link add} puts there
   * @param clock stamps `startedAt` @default the system clock
   */
  constructor(deviceId: string, clock: Pick<Clock, "now"> = { now: () => Date.now() }) {
    this.#deviceId = deviceId;
    this.clock = clock;
  }

  listManaged(deviceId: string): Promise<ObservedContainer[]> {
    return Promise.resolve(
      this.containers
        .filter((c) => c.labels[ContainerLabels.deviceId] === deviceId)
        .map((c) => ({ ...c })),
    );
  }
  ensureImage(image: string): Promise<void> {
    this.calls.push(`ensureImage ${image}`);
    const failure = this.failPull.get(image);
    return failure === undefined ? Promise.resolve() : Promise.reject(new Error(failure));
  }
  create(name: string, service: PodmanService, labels: Record<string, string>): Promise<string> {
    this.calls.push(`create ${name}`);
    const failure = this.failCreate.get(service.image);
    if (failure !== undefined) return Promise.reject(new Error(failure));
    if (this.containers.some((c) => c.name === name)) {
      return Promise.reject(new Error(`the container name "${name}" is already in use`));
    }
    const id = `c${this.#nextId++}`;
    this.containers.push(this.#container(id, name, labels, service, "created"));
    return Promise.resolve(id);
  }
  start(containerId: string): Promise<void> {
    this.calls.push(`start ${containerId}`);
    const c = this.get(containerId);
    if (c && c.state !== "running") {
      c.state = "running";
      c.startedAt = this.clock.now();
    }
    return Promise.resolve();
  }
  remove(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    const c = this.get(containerId);
    this.calls.push(`remove ${c?.name ?? containerId} timeout=${stopTimeoutSeconds}`);
    if (c && this.failRemove.has(c.name)) {
      return Promise.reject(new Error(`cannot stop ${c.name}: device busy`));
    }
    const i = this.containers.findIndex((c) => c.id === containerId);
    if (i >= 0) this.containers.splice(i, 1);
    return Promise.resolve();
  }
  restart(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    this.calls.push(`restart ${containerId} timeout=${stopTimeoutSeconds}`);
    const c = this.get(containerId);
    if (c) {
      c.state = "running";
      c.startedAt = this.clock.now();
    }
    return Promise.resolve();
  }
  version(): Promise<string> {
    return Promise.resolve("memory runtime");
  }
  restartCount(containerId: string): Promise<number | undefined> {
    return Promise.resolve(this.get(containerId)?.restartCount);
  }
  lastExit(containerId: string): Promise<LastExit> {
    const c = this.get(containerId);
    return Promise.resolve({ exitCode: c?.lastExitCode, output: c?.output ?? "" });
  }

  grants(containerId: string): Promise<ContainerGrants | undefined> {
    return Promise.resolve(this.get(containerId)?.grants);
  }

  health(containerId: string): Promise<HealthcheckResult | undefined> {
    const health = this.get(containerId)?.health;
    return Promise.resolve(health && { ...health });
  }

  /** Runs the check as podman does: `retries` failures in a row make it unhealthy. */
  runHealthcheck(containerId: string): Promise<void> {
    this.calls.push(`healthcheck ${containerId}`);
    const c = this.get(containerId);
    if (c?.state !== "running" || c.health === undefined) return Promise.resolve();
    const at = this.clock.now();
    const failure = this.failHealthcheck.get(c.name);
    const streak = failure === undefined ? 0 : c.health.failingStreak + 1;
    c.health = {
      status: failure === undefined
        ? "healthy"
        : streak >= c.healthcheckRetries!
        ? "unhealthy"
        : c.health.status,
      failingStreak: streak,
      lastCheckAt: at,
      // A pass continues the streak of passes before it, if the previous check passed.
      passingSince: failure === undefined ? c.health.passingSince ?? at : undefined,
      lastOutput: failure ?? "",
    };
    return Promise.resolve();
  }

  /** What the container wrote, at once (follow ends there too). */
  logs(containerId: string): Promise<ReadableStream<DataFrame>> {
    const c = this.get(containerId);
    if (!c) return Promise.reject(new Error(`no such container: ${containerId}`));
    const data = new TextEncoder().encode(c.output);
    return Promise.resolve(ReadableStream.from([{ data, stream: "stdout" as const }]));
  }

  exec(): Promise<ExecProcess> {
    return Promise.reject(new Error("the in-memory runtime runs no commands"));
  }

  removeHostShells(): Promise<void> {
    return Promise.resolve();
  }

  get(containerId: string): MemoryContainer | undefined {
    return this.containers.find((c) => c.id === containerId);
  }
  /** The container ends with `exitCode` (after writing `output`), as when its process exits. */
  exit(containerId: string, exitCode: number, output = ""): void {
    const c = this.get(containerId);
    if (!c) throw new Error(`no container ${containerId}`);
    c.state = "exited";
    c.exitCode = exitCode;
    c.lastExitCode = exitCode;
    c.output += output;
  }
  /** The container exits with `exitCode` and podman's restart policy starts it again, `times` times. */
  crash(containerId: string, exitCode: number, output = "", times = 1): void {
    for (let i = 0; i < times; i++) {
      this.exit(containerId, exitCode, output);
      const c = this.get(containerId)!;
      c.restartCount++;
      c.state = "running";
      c.exitCode = 0;
      c.startedAt = this.clock.now();
    }
  }
  /** Puts a container there as a previous agent would have created it, started at `startedAt`. */
  add(
    ref: DeploymentRef,
    service: PodmanService,
    generation = 1,
    state = "running",
    startedAt = this.clock.now(),
  ): string {
    const id = `c${this.#nextId++}`;
    const name = containerName(this.#deviceId, ref, service.name);
    const labels = containerLabels(this.#deviceId, ref, generation, service);
    const c = this.#container(id, name, labels, service, state);
    if (state !== "created") c.startedAt = startedAt;
    this.containers.push(c);
    return id;
  }
  /** Calls since the last `take()`. */
  take(): string[] {
    return this.calls.splice(0);
  }

  #container(
    id: string,
    name: string,
    labels: Record<string, string>,
    service: PodmanService,
    state: string,
  ): MemoryContainer {
    return {
      id,
      name,
      labels,
      state,
      exitCode: 0,
      ports: service.ports.map(parsePort).map((p) => ({
        hostPort: p.hostPort,
        containerPort: p.containerPort,
        protocol: p.protocol,
      })),
      restartCount: 0,
      output: "",
      lastExitCode: undefined,
      grants: {
        mounts: service.volumes.map((v) => ({ hostPath: v.hostPath, readOnly: v.readOnly })),
        privileged: service.privileged === true,
        hostNetwork: service.hostNetwork === true,
        hostPid: service.hostPid === true,
      },
      healthcheckRetries: service.healthcheck?.retries,
      health: service.healthcheck && {
        status: "starting",
        failingStreak: 0,
        lastCheckAt: undefined,
        passingSince: undefined,
        lastOutput: "",
      },
    };
  }
}
