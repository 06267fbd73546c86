/** ContainerRuntime on the Podman REST API. */
import {
  type ContainerGrants,
  ContainerLabels,
  type HealthcheckResult,
  healthcheckTimes,
  MANAGED_BY,
  type ObservedContainer,
  parsePort,
  type PodmanService,
} from "../core/mod.ts";
import {
  HOST_ROOT,
  type PodmanClient,
  PodmanError,
  PodmanUnavailableError,
} from "../adapters/podman/mod.ts";
import type { LogReadOptions } from "../core/device_commands.ts";
import type { DataFrame } from "../core/device_sessions.ts";
import { sleep } from "../adapters/timers.ts";
import type {
  ContainerRuntime,
  ExecOptions,
  ExecProcess,
  ExecTarget,
  LastExit,
} from "./runtime.ts";

/** The last output of a crash-looping container: a few lines, for a short status message. */
const OUTPUT_LINES = 5;
const OUTPUT_MAX_BYTES = 1000;
/** An exit is recorded a moment before the restart it caused. */
const EXIT_BEFORE_START_MS = 2000;
/** Podman marks an exec exited a moment after its output ended: how often and how long to ask. */
const EXIT_CODE_POLLS = 50;
const EXIT_CODE_POLL_MS = 20;
/** What a person types to leave a terminal: Ctrl-C, then Ctrl-D. */
const CTRL_C = new Uint8Array([0x03]);
const CTRL_D = new Uint8Array([0x04]);
const HANG_UP_PAUSE_MS = 200;

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
      ...(service.healthcheck
        ? {
          healthcheck: {
            command: service.healthcheck.command,
            retries: service.healthcheck.retries,
            ...healthcheckTimes(service.healthcheck),
          },
        }
        : {}),
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

  async health(containerId: string): Promise<HealthcheckResult | undefined> {
    const health = await reason(this.#client.containerHealth(containerId));
    return health && {
      status: health.status,
      failingStreak: health.failingStreak,
      lastCheckAt: health.lastCheckAt,
      passingSince: health.passingSince,
      lastOutput: health.lastOutput,
    };
  }

  runHealthcheck(containerId: string): Promise<void> {
    return reason(this.#client.runHealthcheck(containerId));
  }

  logs(
    containerId: string,
    options: LogReadOptions,
    signal: AbortSignal,
  ): Promise<ReadableStream<DataFrame>> {
    return reason(this.#client.streamLogs(containerId, options, signal));
  }

  exec(target: ExecTarget, options: ExecOptions): Promise<ExecProcess> {
    return reason(this.#exec(target, options));
  }

  async removeHostShells(deviceId: string): Promise<void> {
    const left = await this.#client.listContainers({ [ContainerLabels.hostShell]: deviceId });
    for (const c of left) await reason(this.#client.removeContainer(c.id));
  }

  async #exec(target: ExecTarget, options: ExecOptions): Promise<ExecProcess> {
    const client = this.#client;
    let containerId: string;
    let command = options.command;
    let hostShell: string | undefined;
    if ("containerId" in target) {
      containerId = target.containerId;
    } else {
      // The host's own programs, on the host's root: chroot into where it is mounted.
      const { deviceId, sessionId } = target.host;
      containerId = await client.createHostShell(`fleet-host-shell_${deviceId}_${sessionId}`, {
        [ContainerLabels.hostShell]: deviceId,
      });
      hostShell = containerId;
      command = ["chroot", HOST_ROOT, ...command];
    }
    try {
      if (hostShell) await client.startContainer(hostShell);
      const execId = await client.createExec(containerId, { ...options, command });
      const stream = await client.startExec(execId, options);
      return {
        output: stream.output,
        write: (data) => stream.write(data),
        closeStdin: () => stream.closeStdin(),
        resize: (size) => reason(client.resizeExec(execId, size)),
        exitCode: async () => {
          for (let i = 0; i < EXIT_CODE_POLLS; i++) {
            const state = await reason(client.inspectExec(execId));
            if (!state.running) return state.exitCode;
            await sleep(EXIT_CODE_POLL_MS);
          }
          return undefined;
        },
        close: async () => {
          // Podman has no way to stop an exec, and dropping the connection leaves it running:
          // a terminal gets Ctrl-C and Ctrl-D typed (the running program interrupted, then a
          // shell at its prompt ends), any command the end of its stdin.
          try {
            if ((await reason(client.inspectExec(execId))).running) {
              if (options.tty) {
                // The terminal drops what was typed when Ctrl-C interrupts: Ctrl-D comes after.
                await stream.write(CTRL_C);
                await sleep(HANG_UP_PAUSE_MS);
                await stream.write(CTRL_D);
              }
              if (options.stdin) await stream.closeStdin();
            }
          } finally {
            stream.close();
            if (hostShell) await reason(client.removeContainer(hostShell));
          }
        },
      };
    } catch (error) {
      if (hostShell) {
        try {
          await client.removeContainer(hostShell);
        } catch (cleanup) {
          throw new Error(
            `${(error as Error).message}; the host shell container ${hostShell} was not ` +
              `removed either: ${(cleanup as Error).message}`,
            { cause: error },
          );
        }
      }
      throw error;
    }
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
