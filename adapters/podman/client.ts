/**
 * The Podman adapter: a small client for the libpod REST API over its unix socket. It is
 * the only code that talks to Podman; everything it throws is a {@linkcode PodmanError}.
 */

import { LogFrameDemuxer, logFrames } from "./log_frames.ts";
import type { LogReadOptions } from "../../core/device_commands.ts";
import { concat, type DataFrame } from "../../core/device_sessions.ts";
import type * as z from "zod";
import {
  healthConfig,
  LibpodContainerGrantsSchema,
  LibpodContainerHealthSchema,
  LibpodContainerInspectSchema,
  LibpodContainerListSchema,
  LibpodContainerNetworkSchema,
  LibpodCreateResponseSchema,
  LibpodErrorBodySchema,
  LibpodEventSchema,
  LibpodExecInspectSchema,
  LibpodImageInspectSchema,
  LibpodManifestListSchema,
  LibpodStreamMessageSchema,
  LibpodVersionSchema,
} from "./_libpod.ts";
import { fieldPath } from "../../core/errors.ts";
import { PodmanError, PodmanUnavailableError } from "./errors.ts";
import { tarArchive } from "./tar.ts";
import { ExecStartError, type ExecStream, startExecStream } from "./exec_stream.ts";
import {
  type ContainerCreateSpec,
  ContainerCreateSpecSchema,
  type ContainerGrants,
  type ContainerHealth,
  type ContainerLimits,
  type InspectedContainer,
  type InspectedImage,
  type ManifestListEntry,
  type ObservedContainer,
} from "./types.ts";

/**
 * The libpod API version in request paths. Podman 4.x and 5.x both serve `v4.0.0` (the
 * server answers every version from its minimum up), and 4.0 has all we use.
 */
const API = "/v4.0.0/libpod";

/** Where a host shell container mounts the host's root. */
export const HOST_ROOT = "/host";

/** A command to run in a container. */
export interface ExecSpec {
  command: string[];
  tty: boolean;
  stdin: boolean;
}

/**
 * Host name in request URLs. The unix socket carries the request, but Deno still checks
 * `--allow-net` against this name, so it is explicit rather than `localhost`.
 */
const HOST = "http://podman";

/** Options of {@linkcode PodmanClient}. */
export interface PodmanClientOptions {
  /**
   * Path of the libpod socket, e.g. `/run/podman/podman.sock` (rootful) or
   * `$XDG_RUNTIME_DIR/podman/podman.sock` (rootless).
   */
  socketPath: string;
}

/** What {@linkcode PodmanClient.buildImage} builds. */
export interface BuildImageOptions {
  /** Tags for the result, e.g. `["localhost/app:1"]`. At least one. */
  tags: string[];
  /** Text of the Containerfile; it is placed at the root of the context. */
  containerfile: string;
  /** Build context: relative path → content (strings are written as UTF-8). */
  files: Record<string, Uint8Array | string>;
  /** Permission bits per path in `files`. @default 0o644 */
  fileModes?: Record<string, number>;
  /**
   * The image's platform, e.g. `linux/arm64`. A build whose steps only copy files needs no
   * emulation for a foreign one. @default the host's
   */
  platform?: string;
}

/** Server versions reported by {@linkcode PodmanClient.version}. */
export interface PodmanVersion {
  /** Podman release, e.g. `4.3.1`. */
  version: string;
  /** libpod API version, e.g. `4.3.1` (not the Docker-compatible `1.41`). */
  apiVersion: string;
}

/** Names an action for error messages: `Podman could not <operation> "<target>"`. */
interface Operation {
  operation: string;
  target?: string;
}

interface CallInit {
  method?: "GET" | "POST" | "DELETE";
  query?: URLSearchParams;
  /** Sent as `application/json`. */
  json?: unknown;
  /** Sent as is, with `contentType`. */
  bytes?: { data: Uint8Array<ArrayBuffer>; contentType: string };
  /** Aborts the request, and the reading of a streamed answer. */
  signal?: AbortSignal;
}

/**
 * A client for one libpod socket. Needs `--allow-read`/`--allow-write` on the socket path
 * and `--allow-net=podman,unix:<socketPath>`. Call {@linkcode PodmanClient.close} (or use
 * `using`) when done.
 *
 * @example
 * ```ts
 * using podman = new PodmanClient({ socketPath: "/run/podman/podman.sock" });
 * const running = await podman.listContainers({ "fleet.nationtech.io/managed-by": "fleet-agent" });
 * ```
 */
export class PodmanClient implements Disposable {
  /** The libpod socket this client talks to. */
  readonly socketPath: string;
  readonly #http: Deno.HttpClient;
  #closed = false;

  /** @throws {Deno.errors.NotCapable} without `--allow-net=unix:<socketPath>`. */
  constructor(options: PodmanClientOptions) {
    this.socketPath = options.socketPath;
    this.#http = Deno.createHttpClient({ proxy: { transport: "unix", path: options.socketPath } });
  }

  /** Closes the underlying HTTP client; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#http.close();
  }

  /** Same as {@linkcode PodmanClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Checks that the service answers.
   * @throws {PodmanUnavailableError} when the socket cannot be reached.
   */
  async ping(): Promise<void> {
    const op = { operation: "answer a ping" };
    await this.#discard(op, await this.#fetch(op, "/_ping"), [200]);
  }

  /** Podman's release and libpod API version. */
  async version(): Promise<PodmanVersion> {
    const op = { operation: "report its version" };
    const v = await this.#json(op, await this.#fetch(op, `${API}/version`), LibpodVersionSchema);
    // The top-level ApiVersion is the Docker-compatible one; libpod's is on the engine.
    const engine = v.Components?.find((c) => c.Name === "Podman Engine");
    const apiVersion = engine?.Details?.["APIVersion"];
    return {
      version: v.Version,
      apiVersion: typeof apiVersion === "string" ? apiVersion : v.ApiVersion,
    };
  }

  /**
   * All containers (running or not) carrying every one of the given labels.
   * @param labelFilter label → value; an empty object lists every container.
   */
  async listContainers(labelFilter: Record<string, string>): Promise<ObservedContainer[]> {
    const labels = Object.entries(labelFilter).map(([k, v]) => `${k}=${v}`);
    const query = new URLSearchParams({ all: "true" });
    if (labels.length > 0) query.set("filters", JSON.stringify({ label: labels }));
    const op = { operation: "list containers" };
    const response = await this.#fetch(op, `${API}/containers/json`, { query });
    return await this.#json(op, response, LibpodContainerListSchema);
  }

  /**
   * Creates (does not start) a container.
   * @returns the new container's id.
   * @throws {TypeError} when `spec` is invalid (checked before calling Podman).
   */
  async createContainer(spec: ContainerCreateSpec): Promise<string> {
    const checked = ContainerCreateSpecSchema.safeParse(spec);
    if (!checked.success) {
      const issues = checked.error.issues.map((i) =>
        `${fieldPath(i.path) || "spec"}: ${i.message}`
      );
      throw new TypeError(`Invalid container spec "${spec.name}": ${issues.join("; ")}`);
    }
    const op = { operation: "create container", target: spec.name };
    const response = await this.#fetch(op, `${API}/containers/create`, {
      method: "POST",
      json: toSpecGenerator(checked.data),
    });
    return (await this.#json(op, response, LibpodCreateResponseSchema, [201])).Id;
  }

  /** Starts a container; starting a running one is not an error. */
  async startContainer(id: string): Promise<void> {
    const op = { operation: "start container", target: id };
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/start`, {
      method: "POST",
    });
    await this.#discard(op, response, [204, 304]);
  }

  /**
   * Stops a container: its stop signal first, SIGKILL after `timeoutSeconds`. Stopping a
   * stopped container is not an error.
   */
  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    const op = { operation: "stop container", target: id };
    // Podman 4.3 honours `t` on the libpod route and ignores `timeout` (measured); podman 5's
    // handler reads only `timeout` there. Each ignores the other, so send both.
    const seconds = String(Math.max(0, Math.ceil(timeoutSeconds)));
    const query = new URLSearchParams({ t: seconds, timeout: seconds });
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/stop`, {
      method: "POST",
      query,
    });
    await this.#discard(op, response, [204, 304]);
  }

  /**
   * Restarts a container in one call (stop signal, SIGKILL after `timeoutSeconds`, start), so
   * no one sees it stopped in between as they would between a stop and a start.
   */
  async restartContainer(id: string, timeoutSeconds: number): Promise<void> {
    const op = { operation: "restart container", target: id };
    const query = new URLSearchParams({ t: String(Math.max(0, Math.ceil(timeoutSeconds))) });
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/restart`, {
      method: "POST",
      query,
    });
    await this.#discard(op, response, [204]);
  }

  /**
   * Removes a container at once, running or not (SIGKILL, no grace period: a graceful stop
   * is {@linkcode PodmanClient.stopContainer}'s job), with its anonymous volumes. Removing
   * a container that does not exist is not an error.
   */
  async removeContainer(id: string): Promise<void> {
    const op = { operation: "remove container", target: id };
    // A forced remove of a running container waits out its stop timeout (10 s) before the
    // kill, and podman 4.3 has no API parameter to shorten it: kill it first.
    const kill = await this.#fetch(op, `${API}/containers/${enc(id)}/kill`, {
      method: "POST",
      query: new URLSearchParams({ signal: "SIGKILL" }),
    });
    await this.#text(op, kill);
    if (kill.status === 404) return; // already gone
    // Other refusals mean "not running" (409 on podman 5, 500 on 4.3, by message only):
    // nothing to kill. The forced DELETE below decides and reports any real failure.

    // `timeout=0` does the same on podman 5, in case the container was restarted meanwhile.
    const query = new URLSearchParams({ force: "true", v: "true", timeout: "0" });
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}`, {
      method: "DELETE",
      query,
    });
    // Podman 4 answers 200 with a report, podman 5 may answer 204.
    await this.#discard(op, response, [200, 204, 404]);
  }

  /**
   * The current state of one container.
   * @returns undefined when no container has that id or name.
   */
  inspectContainer(id: string): Promise<InspectedContainer | undefined> {
    return this.#inspect(id, LibpodContainerInspectSchema);
  }

  /**
   * The host's bind mounts, privileges and namespaces the container was given.
   * @returns undefined when no container has that id or name.
   */
  containerGrants(id: string): Promise<ContainerGrants | undefined> {
    return this.#inspect(id, LibpodContainerGrantsSchema);
  }

  /**
   * The container's IP address on its network (the podman bridge), which the host can
   * reach without a published port.
   * @returns undefined when the container does not exist or has no address.
   */
  containerAddress(id: string): Promise<string | undefined> {
    return this.#inspect(id, LibpodContainerNetworkSchema);
  }

  /**
   * The container's healthcheck as podman last judged it.
   * @returns undefined when the container does not exist or has no healthcheck.
   */
  async containerHealth(id: string): Promise<ContainerHealth | undefined> {
    return (await this.#inspect(id, LibpodContainerHealthSchema)) ?? undefined;
  }

  /**
   * Runs the container's healthcheck once and waits for it (up to its timeout); podman records
   * the result in the container's health. A container that is gone or not running is not an
   * error: there is nothing to check.
   */
  async runHealthcheck(id: string): Promise<void> {
    const op = { operation: "run healthcheck", target: id };
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/healthcheck`);
    await this.#discard(op, response, [200, 404, 409]);
  }

  /** The container's inspect, read with `schema`; undefined when it does not exist. */
  async #inspect<S extends z.ZodType>(id: string, schema: S): Promise<z.output<S> | undefined> {
    const op = { operation: "inspect container", target: id };
    return await this.#jsonUnless404(op, `${API}/containers/${enc(id)}/json`, schema);
  }

  /**
   * The last lines a container wrote to stdout and stderr, interleaved as written, for a
   * status message.
   * @param options.lines at most this many lines (podman's `tail`)
   * @param options.maxBytes at most this many bytes of text, from the end
   * @throws {PodmanError} when the container does not exist (404).
   */
  async containerLogs(id: string, options: { lines: number; maxBytes: number }): Promise<string> {
    const op = { operation: "read the logs of container", target: id };
    const query = new URLSearchParams({
      stdout: "true",
      stderr: "true",
      tail: String(options.lines),
    });
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/logs`, { query });
    if (response.status !== 200) {
      throw this.#statusError(op, response.status, await this.#text(op, response));
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw this.#transportError(op, error);
    }
    const text = new TextDecoder().decode(concat(new LogFrameDemuxer().push(bytes))).trimEnd();
    return text.length <= options.maxBytes ? text : text.slice(text.length - options.maxBytes);
  }

  /**
   * A container's log as it was written, each piece with its output (stdout or stderr),
   * streamed: podman is read only as fast as the stream is, so a reader that pauses pauses podman.
   * It ends with the log (without follow) or when the container stops; cancelling it or
   * aborting `signal` closes the connection.
   * @throws {PodmanError} when the container does not exist (404).
   */
  async streamLogs(
    id: string,
    options: LogReadOptions,
    signal: AbortSignal,
  ): Promise<ReadableStream<DataFrame>> {
    const op = { operation: "read the logs of container", target: id };
    const query = new URLSearchParams({
      stdout: "true",
      stderr: "true",
      follow: String(options.follow),
      timestamps: String(options.timestamps),
      ...(options.tail === undefined ? {} : { tail: String(options.tail) }),
      ...(options.sinceSeconds === undefined ? {} : { since: String(options.sinceSeconds) }),
    });
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/logs`, { query, signal });
    if (response.status !== 200 || response.body === null) {
      throw this.#statusError(op, response.status, await this.#text(op, response));
    }
    return logFrames(response.body);
  }

  /**
   * Prepares `command` to run in container `id` (`POST /exec`); {@link startExec} runs it.
   * @returns the exec's id
   * @throws {PodmanError} when the container does not exist or does not run
   */
  async createExec(id: string, spec: ExecSpec): Promise<string> {
    const op = { operation: "prepare a command in container", target: id };
    const response = await this.#fetch(op, `${API}/containers/${enc(id)}/exec`, {
      method: "POST",
      json: {
        Cmd: spec.command,
        Tty: spec.tty,
        AttachStdin: spec.stdin,
        AttachStdout: true,
        AttachStderr: true,
      },
    });
    return (await this.#json(op, response, LibpodCreateResponseSchema, [201])).Id;
  }

  /**
   * Starts exec `execId` and returns its connection: stdin one way, output the other, until
   * the command exits.
   * @throws {PodmanError} when Podman does not start it
   */
  async startExec(
    execId: string,
    options: { tty: boolean; size?: { rows: number; cols: number } | undefined },
  ): Promise<ExecStream> {
    const op = { operation: "start the command", target: execId };
    const size = options.size ? { h: options.size.rows, w: options.size.cols } : {};
    try {
      return await startExecStream(
        this.socketPath,
        `${API}/exec/${enc(execId)}/start`,
        { Detach: false, Tty: options.tty, ...size },
        options.tty,
      );
    } catch (error) {
      if (error instanceof ExecStartError) {
        throw new PodmanError({
          ...op,
          status: error.status,
          socketPath: this.socketPath,
          detail: error.body,
        });
      }
      throw this.#transportError(op, error);
    }
  }

  /** Gives exec `execId`'s terminal a new size. */
  async resizeExec(execId: string, size: { rows: number; cols: number }): Promise<void> {
    const op = { operation: "resize the terminal of", target: execId };
    const query = new URLSearchParams({ h: String(size.rows), w: String(size.cols) });
    const path = `${API}/exec/${enc(execId)}/resize`;
    await this.#discard(op, await this.#fetch(op, path, { method: "POST", query }), [200, 201]);
  }

  /** Whether exec `execId` still runs, and its exit code once it does not. */
  async inspectExec(execId: string): Promise<{ running: boolean; exitCode?: number }> {
    const op = { operation: "inspect the command", target: execId };
    const path = `${API}/exec/${enc(execId)}/json`;
    const e = await this.#json(op, await this.#fetch(op, path), LibpodExecInspectSchema);
    return {
      running: e.Running,
      ...(e.Running || e.ExitCode == null ? {} : { exitCode: e.ExitCode }),
    };
  }

  /**
   * Creates (not starts) a container that is the host as far as a command run in it with
   * `chroot /host` can tell: the host's root mounted at `/host`, its process, network, UTS and
   * IPC namespaces, privileged. Its own root is an overlay of the host's, so it needs no image.
   */
  async createHostShell(name: string, labels: Record<string, string>): Promise<string> {
    const op = { operation: "create the host shell container", target: name };
    const host = { nsmode: "host" };
    const response = await this.#fetch(op, `${API}/containers/create`, {
      method: "POST",
      json: {
        name,
        labels,
        rootfs: "/",
        rootfs_overlay: true,
        mounts: [{ destination: HOST_ROOT, source: "/", type: "bind", options: ["rbind", "rw"] }],
        pidns: host,
        netns: host,
        utsns: host,
        ipcns: host,
        privileged: true,
        command: ["sleep", "infinity"],
      },
    });
    return (await this.#json(op, response, LibpodCreateResponseSchema, [201])).Id;
  }

  /**
   * The exit code of the container's latest exit since `sinceMs` (epoch ms), from Podman's
   * event log: the only record of it once the restart policy has started the container again.
   * @returns undefined when no exit is recorded (or Podman keeps no events).
   */
  async lastExitCode(id: string, sinceMs: number): Promise<number | undefined> {
    const op = { operation: "read the events of container", target: id };
    const query = new URLSearchParams({
      stream: "false",
      since: String(Math.floor(sinceMs / 1000)),
      filters: JSON.stringify({ container: [id], event: ["died"] }),
    });
    const response = await this.#fetch(op, `${API}/events`, { query });
    const text = await this.#text(op, response);
    if (response.status !== 200) throw this.#statusError(op, response.status, text);
    let code: number | undefined;
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      let event;
      try {
        event = LibpodEventSchema.safeParse(JSON.parse(line));
      } catch (error) {
        throw this.#unexpected(op, response.status, `not JSON: ${line.slice(0, 200)}`, error);
      }
      if (event.success && event.data !== undefined) code = event.data;
    }
    return code;
  }

  /** Whether the image is in local storage. */
  async imageExists(ref: string): Promise<boolean> {
    const op = { operation: "look up image", target: ref };
    const response = await this.#fetch(op, `${API}/images/${encImage(ref)}/exists`);
    await this.#discard(op, response, [204, 404]);
    return response.status === 204;
  }

  /**
   * Pulls an image unless it is already present.
   * @throws {PodmanError} naming the image when the registry or the pull fails.
   */
  async pullImage(ref: string): Promise<void> {
    const op = { operation: "pull image", target: ref };
    const query = new URLSearchParams({ reference: ref, policy: "missing" });
    const response = await this.#fetch(op, `${API}/images/pull`, { method: "POST", query });
    await this.#stream(op, response);
  }

  /**
   * Builds an image from a Containerfile and in-memory context files.
   * @throws {PodmanError} with the build's last output lines as `cause` when a step fails.
   */
  async buildImage(options: BuildImageOptions): Promise<void> {
    const op = { operation: "build image", target: options.tags[0] ?? "(untagged)" };
    if (options.tags.length === 0) throw new TypeError("buildImage needs at least one tag");
    if ("Containerfile" in options.files) {
      throw new TypeError(`Build context for "${op.target}" already has a "Containerfile"`);
    }
    const encoder = new TextEncoder();
    const entries = Object.entries(options.files).map(([path, content]) => ({
      path,
      data: typeof content === "string" ? encoder.encode(content) : content,
      ...(options.fileModes?.[path] === undefined ? {} : { mode: options.fileModes[path] }),
    }));
    entries.push({ path: "Containerfile", data: encoder.encode(options.containerfile) });

    // forcerm: without it a failed step leaves a buildah working container in storage.
    const query = new URLSearchParams({ dockerfile: "Containerfile", forcerm: "true" });
    for (const tag of options.tags) query.append("t", tag);
    if (options.platform !== undefined) query.set("platform", options.platform);
    const response = await this.#fetch(op, `${API}/build`, {
      method: "POST",
      query,
      bytes: { data: tarArchive(entries), contentType: "application/x-tar" },
    });
    await this.#stream(op, response);
  }

  /**
   * The id and labels of a local image.
   * @returns undefined when the image is not in local storage.
   */
  async inspectImage(ref: string): Promise<InspectedImage | undefined> {
    const op = { operation: "inspect image", target: ref };
    return await this.#jsonUnless404(
      op,
      `${API}/images/${encImage(ref)}/json`,
      LibpodImageInspectSchema,
    );
  }

  /** Removes an image from local storage; removing an absent image is not an error. */
  async removeImage(ref: string): Promise<void> {
    const op = { operation: "remove image", target: ref };
    const response = await this.#fetch(op, `${API}/images/${encImage(ref)}`, {
      method: "DELETE",
    });
    await this.#discard(op, response, [200, 204, 404]);
  }

  /**
   * Creates the manifest list (image index) `name` of local images, replacing a list of that
   * name. Each image's platform comes from its config.
   * @param images local image references or ids.
   * @throws {PodmanError} when an image is not in local storage or `name` names an image.
   */
  async createManifestList(name: string, images: string[]): Promise<void> {
    const op = { operation: "create manifest list", target: name };
    await this.removeManifestList(name);
    const query = new URLSearchParams();
    // Without the transport a bare name would be looked up in a registry.
    for (const image of images) query.append("images", `containers-storage:${image}`);
    const response = await this.#fetch(op, `${API}/manifests/${encImage(name)}`, {
      method: "POST",
      query,
    });
    await this.#discard(op, response, [200, 201]);
  }

  /**
   * The images of a local manifest list.
   * @returns undefined when there is no manifest list of that name.
   */
  async inspectManifestList(name: string): Promise<ManifestListEntry[] | undefined> {
    const op = { operation: "inspect manifest list", target: name };
    const path = `${API}/manifests/${encImage(name)}/json`;
    return await this.#jsonUnless404(op, path, LibpodManifestListSchema);
  }

  /** Removes a local manifest list (not its images); removing an absent one is not an error. */
  async removeManifestList(name: string): Promise<void> {
    const op = { operation: "remove manifest list", target: name };
    const response = await this.#fetch(op, `${API}/manifests/${encImage(name)}`, {
      method: "DELETE",
    });
    await this.#discard(op, response, [200, 404]);
  }

  /**
   * Pushes a local manifest list and all its images to `destination` (`registry/repo:tag`),
   * with the credentials of the user Podman runs as (`podman login`).
   * @param options.tlsVerify false for a registry over plain HTTP; unset: as registries.conf says.
   * @throws {PodmanError} with the registry's answer when the push fails.
   */
  async pushManifestList(
    name: string,
    destination: string,
    options: { tlsVerify?: boolean } = {},
  ): Promise<void> {
    const op = { operation: `push manifest list "${name}" to`, target: destination };
    const query = new URLSearchParams({ all: "true" });
    if (options.tlsVerify !== undefined) query.set("tlsVerify", String(options.tlsVerify));
    const path = `${API}/manifests/${encImage(name)}/registry/${encImage(destination)}`;
    const response = await this.#fetch(op, path, { method: "POST", query });
    await this.#discard(op, response, [200]);
  }

  // --- transport ------------------------------------------------------------------------

  async #fetch(op: Operation, path: string, init: CallInit = {}): Promise<Response> {
    const url = `${HOST}${path}${init.query ? `?${init.query}` : ""}`;
    const headers = new Headers();
    let body: BodyInit | undefined;
    if (init.bytes !== undefined) {
      body = init.bytes.data;
      headers.set("Content-Type", init.bytes.contentType);
    } else if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers.set("Content-Type", "application/json");
    }
    try {
      return await fetch(url, {
        method: init.method ?? "GET",
        headers,
        client: this.#http,
        ...(body === undefined ? {} : { body }),
        ...(init.signal === undefined ? {} : { signal: init.signal }),
      });
    } catch (error) {
      throw this.#transportError(op, error);
    }
  }

  #transportError(op: Operation, error: unknown): PodmanError {
    const connect = connectFailure(error);
    if (connect !== undefined) {
      return new PodmanUnavailableError(
        { ...op, socketPath: this.socketPath, reason: connect },
        { cause: error },
      );
    }
    const detail = error instanceof Error ? describe(error) : String(error);
    return new PodmanError({ ...op, socketPath: this.socketPath, detail }, { cause: error });
  }

  /** Reads the whole body as text, wrapping a broken connection. */
  async #text(op: Operation, response: Response): Promise<string> {
    try {
      return await response.text();
    } catch (error) {
      throw this.#transportError(op, error);
    }
  }

  /** Throws the libpod error unless the status is expected; always consumes the body. */
  async #discard(op: Operation, response: Response, ok: number[]): Promise<void> {
    const text = await this.#text(op, response);
    if (!ok.includes(response.status)) throw this.#statusError(op, response.status, text);
  }

  /** GETs `path` and parses the answer with `schema`; undefined when it is not found (404). */
  async #jsonUnless404<S extends z.ZodType>(
    op: Operation,
    path: string,
    schema: S,
  ): Promise<z.output<S> | undefined> {
    const response = await this.#fetch(op, path);
    if (response.status === 404) {
      await this.#discard(op, response, [404]);
      return undefined;
    }
    return await this.#json(op, response, schema);
  }

  async #json<S extends z.ZodType>(
    op: Operation,
    response: Response,
    schema: S,
    ok: number[] = [200],
  ): Promise<z.output<S>> {
    const text = await this.#text(op, response);
    if (!ok.includes(response.status)) throw this.#statusError(op, response.status, text);
    let parsed: z.ZodSafeParseResult<z.output<S>>;
    try {
      parsed = schema.safeParse(JSON.parse(text));
    } catch (error) {
      throw this.#unexpected(op, response.status, `not JSON: ${text.slice(0, 200)}`, error);
    }
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
      throw this.#unexpected(op, response.status, issues.join("; "), parsed.error);
    }
    return parsed.data;
  }

  #unexpected(op: Operation, status: number, what: string, cause: unknown): PodmanError {
    return new PodmanError(
      {
        ...op,
        status,
        socketPath: this.socketPath,
        detail: `unexpected answer from Podman (${what})`,
      },
      { cause },
    );
  }

  #statusError(op: Operation, status: number, text: string): PodmanError {
    let detail = text.trim() || `HTTP ${status}`;
    try {
      const body = LibpodErrorBodySchema.safeParse(JSON.parse(text));
      if (body.success && (body.data.message || body.data.cause)) {
        detail = body.data.message || body.data.cause || detail;
      }
    } catch {
      // Not JSON (e.g. a proxy's plain-text answer): the raw text is the best detail.
    }
    return new PodmanError({ ...op, status, socketPath: this.socketPath, detail });
  }

  /**
   * Reads a streamed answer (pull, build) to the end. libpod has already sent 200 by the
   * time a step fails, so failures arrive as an `error` message inside the stream.
   */
  async #stream(op: Operation, response: Response): Promise<void> {
    if (response.status !== 200) {
      throw this.#statusError(op, response.status, await this.#text(op, response));
    }
    if (response.body === null) return;
    const tail: string[] = []; // last output lines, for the error's cause
    let failure: string | undefined;
    const handle = (line: string) => {
      if (line.trim() === "") return;
      let message;
      try {
        message = LibpodStreamMessageSchema.safeParse(JSON.parse(line));
      } catch {
        return; // a stray non-JSON line (never seen) is output, not a failure
      }
      if (!message.success) return;
      const { stream, error, errorDetail } = message.data;
      if (stream !== undefined) {
        tail.push(...stream.split("\n").filter((l) => l.trim() !== ""));
        tail.splice(0, Math.max(0, tail.length - 20));
      }
      failure ??= error ?? errorDetail?.message;
    };

    let buffered = "";
    try {
      for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
        buffered += chunk;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        lines.forEach(handle);
      }
    } catch (error) {
      throw this.#transportError(op, error);
    }
    handle(buffered);
    if (failure !== undefined) {
      const cause = tail.length > 0 ? new Error(`Podman output:\n${tail.join("\n")}`) : undefined;
      throw new PodmanError(
        { ...op, status: response.status, socketPath: this.socketPath, detail: failure },
        cause === undefined ? undefined : { cause },
      );
    }
  }
}

/** Maps our spec to libpod's SpecGenerator (`POST /libpod/containers/create`). */
function toSpecGenerator(spec: ContainerCreateSpec): Record<string, unknown> {
  return {
    name: spec.name,
    image: spec.image,
    labels: spec.labels,
    env: spec.env,
    portmappings: spec.ports.map((p) => ({
      host_port: p.hostPort,
      container_port: p.containerPort,
      protocol: p.protocol,
      ...(p.hostIp === undefined ? {} : { host_ip: p.hostIp }),
    })),
    mounts: spec.volumes.map((v) => ({
      type: "bind",
      source: v.hostPath,
      destination: v.containerPath,
      options: ["rbind", v.readOnly ? "ro" : "rw"],
    })),
    restart_policy: spec.restartPolicy,
    ...(spec.command === undefined ? {} : { entrypoint: spec.command }),
    ...(spec.args === undefined ? {} : { command: spec.args }),
    ...(spec.limits === undefined ? {} : { resource_limits: resourceLimits(spec.limits) }),
    ...(spec.privileged ? { privileged: true } : {}),
    ...(spec.hostNetwork ? { netns: { nsmode: "host" } } : {}),
    ...(spec.hostPid ? { pidns: { nsmode: "host" } } : {}),
    ...(spec.healthcheck === undefined ? {} : { healthconfig: healthConfig(spec.healthcheck) }),
  };
}

/** CPU time is given as a quota per scheduling period. */
const CPU_PERIOD_US = 100_000;

/** libpod's `resource_limits` (OCI LinuxResources). */
function resourceLimits(limits: ContainerLimits): Record<string, unknown> {
  return {
    ...(limits.memoryMb === undefined ? {} : { memory: { limit: limits.memoryMb * 1024 * 1024 } }),
    ...(limits.cpus === undefined
      ? {}
      : { cpu: { quota: Math.round(limits.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US } }),
    ...(limits.pids === undefined ? {} : { pids: { limit: limits.pids } }),
  };
}

/**
 * Deno reports a failed connect as `TypeError("fetch failed")` whose cause reads
 * `... client error (Connect): No such file or directory (os error 2)` (older releases put
 * that text in the TypeError itself). Returns the OS reason, or undefined for other errors.
 */
function connectFailure(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 3; depth++) {
    const match = /client error \(Connect\):\s*(.+)$/s.exec(e.message);
    if (match?.[1] !== undefined) return match[1].trim();
    e = e.cause;
  }
  return undefined;
}

/** The message of an error and its causes, e.g. `fetch failed: connection reset`. */
function describe(error: Error): string {
  const parts = [error.message];
  if (error.cause instanceof Error) parts.push(error.cause.message);
  return parts.join(": ");
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

/**
 * Image references keep their `/` (libpod routes `/images/{name:.*}`); everything else
 * that could break the path is escaped.
 */
function encImage(ref: string): string {
  return ref.split("/").map(encodeURIComponent).join("/");
}
