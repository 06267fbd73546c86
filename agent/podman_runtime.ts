/** ContainerRuntime on the Podman REST API. */
import {
  ContainerLabels,
  MANAGED_BY,
  type ObservedContainer,
  parsePort,
  type PodmanService,
} from "../core/mod.ts";
import type { PodmanClient } from "../adapters/podman/mod.ts";
import type { ContainerRuntime } from "./runtime.ts";

export class PodmanRuntime implements ContainerRuntime {
  readonly #client: PodmanClient;

  constructor(client: PodmanClient) {
    this.#client = client;
  }

  listManaged(deviceId: string): Promise<ObservedContainer[]> {
    return this.#client.listContainers({
      [ContainerLabels.managedBy]: MANAGED_BY,
      [ContainerLabels.deviceId]: deviceId,
    });
  }

  async ensureImage(image: string): Promise<void> {
    if (!(await this.#client.imageExists(image))) await this.#client.pullImage(image);
  }

  async run(name: string, service: PodmanService, labels: Record<string, string>): Promise<string> {
    const id = await this.#client.createContainer({
      name,
      image: service.image,
      labels,
      env: Object.fromEntries(service.env.map((e) => [e.name, e.value])),
      ports: service.ports.map(parsePort),
      volumes: service.volumes,
      restartPolicy: service.restartPolicy,
      ...(service.command ? { command: service.command } : {}),
      ...(service.args ? { args: service.args } : {}),
    });
    await this.#client.startContainer(id);
    return id;
  }

  start(containerId: string): Promise<void> {
    return this.#client.startContainer(containerId);
  }

  async remove(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    await this.#client.stopContainer(containerId, stopTimeoutSeconds);
    await this.#client.removeContainer(containerId);
  }
}
