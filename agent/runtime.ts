/** The container runtime as the agent sees it; podman_runtime.ts is the real one. */
import type {
  ContainerGrants,
  HealthcheckResult,
  ObservedContainer,
  PodmanService,
} from "../core/mod.ts";
import type { LogReadOptions, TerminalSize } from "../core/device_commands.ts";
import type { DataFrame } from "../core/device_sessions.ts";

/**
 * How a container's latest run ended, for a crash-loop message: its exit code when it is
 * known and its last lines of output.
 */
export interface LastExit {
  exitCode: number | undefined;
  output: string;
}

/** What an exec runs, and how. */
export interface ExecOptions {
  command: string[];
  /** A terminal of `size` (stdout and stderr become one). */
  tty: boolean;
  /** Keep stdin open for {@link ExecProcess.write}. */
  stdin: boolean;
  size?: TerminalSize | undefined;
}

/** Where an exec runs: a container, or the host itself (a host shell, for one session). */
export type ExecTarget = { containerId: string } | {
  host: { deviceId: string; sessionId: string };
};

/** A command running for an exec session. */
export interface ExecProcess {
  /** Its output as it comes; ends when the command exits. */
  output: ReadableStream<DataFrame>;
  write(data: Uint8Array): Promise<void>;
  /** Its stdin reads end of file. */
  closeStdin(): Promise<void>;
  resize(size: TerminalSize): Promise<void>;
  /** Once the output ended: how it exited (undefined when the runtime cannot tell). */
  exitCode(): Promise<number | undefined>;
  /** Lets go of it: its connection closes, a host shell's container is removed. */
  close(): Promise<void>;
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
  /** The runtime's verdict on the container's healthcheck; undefined when it is gone or has none. */
  health(containerId: string): Promise<HealthcheckResult | undefined>;
  /** Runs the container's healthcheck once (see core healthcheckDueAt for why the agent does). */
  runHealthcheck(containerId: string): Promise<void>;
  /** What the container was given of the host; undefined when it is gone. */
  grants(containerId: string): Promise<ContainerGrants | undefined>;
  /**
   * The container's log as written, each piece with its output (a long line may come in
   * pieces, a line of the other output between them), streamed: read no faster than the stream
   * is read; aborting `signal` stops it.
   */
  logs(
    containerId: string,
    options: LogReadOptions,
    signal: AbortSignal,
  ): Promise<ReadableStream<DataFrame>>;
  /** Starts `options.command` in `target`. */
  exec(target: ExecTarget, options: ExecOptions): Promise<ExecProcess>;
  /** Removes host shell containers a stopped agent left behind. */
  removeHostShells(deviceId: string): Promise<void>;
}
