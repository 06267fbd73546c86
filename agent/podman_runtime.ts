/** ContainerRuntime on the Podman REST API. */
import {
  type ContainerGrants,
  ContainerLabels,
  MANAGED_BY,
  type ObservedContainer,
  parsePort,
  type PodmanService,
} from "../core/mod.ts";
import { type PodmanClient, PodmanError, PodmanUnavailableError } from "../adapters/podman/mod.ts";
import type { LogReadOptions } from "../core/device_commands.ts";
import type { ContainerRuntime, LastExit } from "./runtime.ts";

/** The last output of a crash-looping container: a few lines, for a short status message. */
const OUTPUT_LINES = 5;
const OUTPUT_MAX_BYTES = 1000;
/** An exit is recorded a moment before the restart it caused. */
const EXIT_BEFORE_START_MS = 2000;

/**
 * Podman's own reason (`manifest unknown`) instead of `Podman could not pull image "x": ...`:
 * the agent names the step. An unreachable socket keeps its full message, which says what to do.
 */
async function reason<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof PodmanError && !(error instanceof PodmanUnavailableError)) {
      throw new Error(error.detail, { cause: error });
    }
    throw error;
  }
}

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

  ensureImage(image: string): Promise<void> {
    return reason((async () => {
      if (!(await this.#client.imageExists(image))) await this.#client.pullImage(image);
    })());
  }

  /** The service's limits come complete from the device policy (agent/workload_policy.ts). */
  create(name: string, service: PodmanService, labels: Record<string, string>): Promise<string> {
    const limits = service.resources?.limits;
    return reason(this.#client.createContainer({
      name,
      image: service.image,
      labels,
      env: Object.fromEntries(service.env.map((e) => [e.name, e.value])),
      ports: service.ports.map(parsePort),
      volumes: service.volumes,
      restartPolicy: service.restartPolicy,
      ...(service.command ? { command: service.command } : {}),
      ...(service.args ? { args: service.args } : {}),
      ...(limits ? { limits } : {}),
      ...(service.privileged ? { privileged: true } : {}),
      ...(service.hostNetwork ? { hostNetwork: true } : {}),
      ...(service.hostPid ? { hostPid: true } : {}),
    }));
  }

  start(containerId: string): Promise<void> {
    return reason(this.#client.startContainer(containerId));
  }

  remove(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    return reason((async () => {
      await this.#client.stopContainer(containerId, stopTimeoutSeconds);
      await this.#client.removeContainer(containerId);
    })());
  }

  restart(containerId: string, stopTimeoutSeconds: number): Promise<void> {
    return reason(this.#client.restartContainer(containerId, stopTimeoutSeconds));
  }

  async version(): Promise<string> {
    return `podman ${(await reason(this.#client.version())).version}`;
  }

  async restartCount(containerId: string): Promise<number | undefined> {
    return (await reason(this.#client.inspectContainer(containerId)))?.restartCount;
  }

  grants(containerId: string): Promise<ContainerGrants | undefined> {
    return reason(this.#client.containerGrants(containerId));
  }

  logs(
    containerId: string,
    options: LogReadOptions,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    return reason(this.#client.streamLogs(containerId, options, signal));
  }

  lastExit(containerId: string): Promise<LastExit> {
    return reason((async () => {
      const inspected = await this.#client.inspectContainer(containerId);
      let exitCode: number | undefined;
      if (inspected?.state === "exited" || inspected?.state === "stopped") {
        exitCode = inspected.exitCode;
      } else if (inspected?.startedAt !== undefined) {
        // Restarted already: only the event log still knows how the previous run ended.
        exitCode = await this.#client.lastExitCode(
          containerId,
          inspected.startedAt - EXIT_BEFORE_START_MS,
        );
      }
      const output = await this.#client.containerLogs(containerId, {
        lines: OUTPUT_LINES,
        maxBytes: OUTPUT_MAX_BYTES,
      });
      return { exitCode, output };
    })());
  }
}
