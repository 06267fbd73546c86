/** The container runtime as the agent sees it; podman_runtime.ts is the real one. */
import type { ContainerGrants, ObservedContainer, PodmanService } from "../core/mod.ts";
import type { LogReadOptions } from "../core/device_commands.ts";

/**
 * How a container's latest run ended, for a crash-loop message: its exit code when it is
 * known and its last lines of output.
 */
export interface LastExit {
  exitCode: number | undefined;
  output: string;
}

/**
 * Errors carry the runtime's own reason as their message (e.g. `manifest unknown`); the
 * agent says which step failed.
 */
export interface ContainerRuntime {
  /** Containers this agent manages on this device (by label), running or not. */
  listManaged(deviceId: string): Promise<ObservedContainer[]>;
  /** Pulls the image when it is not present (IfNotPresent). */
  ensureImage(image: string): Promise<void>;
  /** Creates (does not start) a container for `service`; returns its id. */
  create(name: string, service: PodmanService, labels: Record<string, string>): Promise<string>;
  start(containerId: string): Promise<void>;
  /** Graceful stop, kill after `stopTimeoutSeconds`, then remove; gone already is fine. */
  remove(containerId: string, stopTimeoutSeconds: number): Promise<void>;
  /** Stops (gracefully, kill after `stopTimeoutSeconds`) and starts a container, at once. */
  restart(containerId: string, stopTimeoutSeconds: number): Promise<void>;
  /** The runtime's name and version, e.g. `podman 5.4.2`, for diagnostics. */
  version(): Promise<string>;
  /** How often its restart policy has restarted the container; undefined when it is gone. */
  restartCount(containerId: string): Promise<number | undefined>;
  lastExit(containerId: string): Promise<LastExit>;
  /** What the container was given of the host; undefined when it is gone. */
  grants(containerId: string): Promise<ContainerGrants | undefined>;
  /**
   * The container's log as written (stdout and stderr interleaved), streamed: read no faster
   * than the stream is read; aborting `signal` stops it.
   */
  logs(
    containerId: string,
    options: LogReadOptions,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>>;
}
