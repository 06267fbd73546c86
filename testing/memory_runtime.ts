/**
 * Our ContainerRuntime port in memory, for the agent's tests: records calls, can be told to
 * fail, and holds containers as podman would list them.
 */
import {
  ContainerLabels,
  containerLabels,
  containerName,
  type DeploymentRef,
  type ObservedContainer,
  type PodmanService,
} from "../core/mod.ts";
import type { ContainerRuntime } from "../agent/runtime.ts";

export class MemoryRuntime implements ContainerRuntime {
  readonly containers: ObservedContainer[] = [];
  /** `<method> <subject>` for every call but listManaged. */
  readonly calls: string[] = [];
  /** Images whose create fails, with the error message. */
  readonly failCreate = new Map<string, string>();
  /** Container names whose removal fails. */
  readonly failRemove = new Set<string>();
  readonly #deviceId: string;
  #nextId = 1;

  /** @param deviceId the device whose containers {@link add} puts there */
  constructor(deviceId: string) {
    this.#deviceId = deviceId;
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
    return Promise.resolve();
  }
  run(name: string, service: PodmanService, labels: Record<string, string>): Promise<string> {
    this.calls.push(`run ${name}`);
    const failure = this.failCreate.get(service.image);
    if (failure !== undefined) return Promise.reject(new Error(failure));
    if (this.containers.some((c) => c.name === name)) {
      return Promise.reject(new Error(`the container name "${name}" is already in use`));
    }
    const id = `c${this.#nextId++}`;
    this.containers.push({ id, name, labels, state: "running", exitCode: 0 });
    return Promise.resolve(id);
  }
  start(containerId: string): Promise<void> {
    this.calls.push(`start ${containerId}`);
    const c = this.containers.find((c) => c.id === containerId);
    if (c) c.state = "running";
    return Promise.resolve();
  }
  remove(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    const c = this.containers.find((c) => c.id === containerId);
    this.calls.push(`remove ${c?.name ?? containerId} timeout=${stopTimeoutSeconds}`);
    if (c && this.failRemove.has(c.name)) {
      return Promise.reject(new Error(`cannot stop ${c.name}: device busy`));
    }
    const i = this.containers.findIndex((c) => c.id === containerId);
    if (i >= 0) this.containers.splice(i, 1);
    return Promise.resolve();
  }
  /** Puts a container there as a previous agent would have created it. */
  add(ref: DeploymentRef, service: PodmanService, generation = 1, state = "running"): string {
    const id = `c${this.#nextId++}`;
    this.containers.push({
      id,
      name: containerName(this.#deviceId, ref, service.name),
      labels: containerLabels(this.#deviceId, ref, generation, service),
      state,
      exitCode: 0,
    });
    return id;
  }
  /** Calls since the last `take()`. */
  take(): string[] {
    return this.calls.splice(0);
  }
}
