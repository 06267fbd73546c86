/**
 * Runs a private `podman system service` on a socket in a temp dir, for tests and
 * `fleet demo`. It shares the default image and container storage, so an image built by
 * one service is there for the next.
 *
 * Layout: `<base>/fleet-podman-<uid>/` (mode 0700, kept) holds `containers.conf` and one
 * `service-XXXX/podman.sock` temp dir per running service (removed on stop). The config
 * must outlive the service: each container's conmon inherits `CONTAINERS_CONF` and runs
 * `podman container cleanup` with it whenever the container exits, possibly long after
 * the service stopped. With the file gone that cleanup fails, the container stays
 * "stopped" instead of "exited", and later kills and stops hang on it (measured: 20 s).
 */

import { PodmanClient } from "../adapters/podman/client.ts";
import { PodmanError } from "../adapters/podman/errors.ts";
import { spawnHelper } from "../adapters/process.ts";

/**
 * Settings this kind of machine needs (no systemd, no CAP_SYS_RESOURCE):
 * - podman 4.3 asks runc for nofile=1048576 by default, above the hard limit here, and runc
 *   cannot raise it, so every container start fails; ask for limits that fit.
 * - no systemd: cgroups are managed directly and events go to a file, not journald.
 * - runc is the runtime Debian installs (crun is not there).
 */
const CONTAINERS_CONF = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const STDERR_TAIL_BYTES = 4096;

/** Options of {@linkcode startPodmanService}. */
export interface PodmanServiceOptions {
  /**
   * Base directory for `fleet-podman-<uid>/` (config and socket dirs); keep it short, a
   * socket path must fit in 107 bytes. @default "/tmp"
   */
  dir?: string;
}

/** A running `podman system service`; `await using` stops it. */
export interface PodmanService extends AsyncDisposable {
  /** Path of its libpod socket. */
  readonly socketPath: string;
  /** The `containers.conf` it runs with (shared by services of this user; kept). */
  readonly containersConf: string;
  /** Stops the service (SIGTERM, then SIGKILL after 10 s) and removes its socket dir. */
  stop(): Promise<void>;
}

/**
 * Starts `podman system service --time=0` on a socket in a fresh temp dir and waits until
 * it answers a ping. Containers it started keep running after it stops (conmon owns them).
 * Needs `--allow-run=setpriv`, `--allow-env=PATH` (see {@link spawnHelper}), `--allow-sys=uid`,
 * read/write on the base dir and `--allow-net=podman,unix:<socket>` (or `-A`).
 *
 * @throws {Error} when `podman` is not installed, the state dir is not private to this
 * user, or the service does not answer within 15 s (the message then ends with the
 * service's stderr).
 */
export async function startPodmanService(
  options: PodmanServiceOptions = {},
): Promise<PodmanService> {
  const stateDir = await privateStateDir(options.dir ?? "/tmp");
  const containersConf = await writeContainersConf(stateDir);
  const dir = await Deno.makeTempDir({ dir: stateDir, prefix: "service-" });
  const socketPath = `${dir}/podman.sock`;

  let child: Deno.ChildProcess;
  try {
    // Spared the terminal's Ctrl-C: the demo's cleanup removes its containers through this
    // service. Stopped when this process dies.
    child = spawnHelper("podman", {
      args: ["system", "service", "--time=0", `unix://${socketPath}`],
      env: { CONTAINERS_CONF: containersConf },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    });
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        'Cannot start the Podman service: "podman" is not on PATH; install it (apt-get install podman)',
        { cause: error },
      );
    }
    throw error;
  }

  const stderr = new StderrTail(child.stderr);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  let stopped: Promise<void> | undefined;

  const stop = () =>
    stopped ??= (async () => {
      if (exited === undefined) {
        trySignal(child, "SIGTERM");
        const timer = setTimeout(() => trySignal(child, "SIGKILL"), STOP_TIMEOUT_MS);
        await status;
        clearTimeout(timer);
      }
      await stderr.close();
      await Deno.remove(dir, { recursive: true });
    })();

  const client = new PodmanClient({ socketPath });
  try {
    await waitForPing(client, () => exited, stderr);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    client.close();
  }

  return { socketPath, containersConf, stop, [Symbol.asyncDispose]: stop };
}

async function waitForPing(
  client: PodmanClient,
  exited: () => Deno.CommandStatus | undefined,
  stderr: StderrTail,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    const status = exited();
    if (status !== undefined) {
      await stderr.drained(500);
      throw new Error(
        `The Podman service exited with code ${status.code} before answering on ` +
          `"${client.socketPath}": ${stderr.text() || "(no stderr)"}`,
      );
    }
    try {
      await client.ping();
      return;
    } catch (error) {
      // The socket appears a moment after the process starts; anything else is fatal.
      if (!(error instanceof PodmanError) || error.status !== undefined) throw error;
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `The Podman service did not answer on "${client.socketPath}" within ` +
      `${START_TIMEOUT_MS / 1000} s: ${stderr.text() || "(no stderr)"}`,
    { cause: last },
  );
}

function trySignal(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch (error) {
    // It exited between the check and the signal: that is what we wanted.
    if (!(error instanceof TypeError)) throw error;
  }
}

/**
 * `<base>/fleet-podman-<uid>`, created 0700. The service runs with the config found here
 * (as root, with rootful Podman), so an existing directory must be ours and private: in a
 * shared /tmp anyone could otherwise plant a config naming their own runtime binary.
 */
async function privateStateDir(base: string): Promise<string> {
  const uid = Deno.uid();
  const dir = `${base}/fleet-podman-${uid ?? "user"}`;
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = await Deno.lstat(dir);
  const mode = info.mode ?? 0;
  if (!info.isDirectory || info.uid !== uid || (mode & 0o077) !== 0) {
    throw new Error(
      `Cannot use "${dir}" for the Podman service: it must be a directory owned by this ` +
        `user with mode 0700 (found ${info.isDirectory ? "directory" : "non-directory"}, ` +
        `uid ${info.uid}, mode ${(mode & 0o777).toString(8)}); remove it and retry`,
    );
  }
  return dir;
}

/** Writes the config unless it is already there; atomic, as tests start services in parallel. */
async function writeContainersConf(stateDir: string): Promise<string> {
  const path = `${stateDir}/containers.conf`;
  try {
    if (await Deno.readTextFile(path) === CONTAINERS_CONF) return path;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const temp = await Deno.makeTempFile({ dir: stateDir, prefix: "containers.conf." });
  await Deno.writeTextFile(temp, CONTAINERS_CONF);
  await Deno.rename(temp, path);
  return path;
}

/**
 * Keeps the last few KiB of the service's stderr for error messages. It must keep reading,
 * or a chatty service would block on a full pipe.
 */
class StderrTail {
  #bytes = new Uint8Array();
  #truncated = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
    this.#done = this.#pump();
  }

  async #pump(): Promise<void> {
    for (;;) {
      const { done, value } = await this.#reader.read();
      if (done) return;
      const joined = new Uint8Array(this.#bytes.length + value.length);
      joined.set(this.#bytes);
      joined.set(value, this.#bytes.length);
      this.#truncated ||= joined.length > STDERR_TAIL_BYTES;
      this.#bytes = joined.slice(-STDERR_TAIL_BYTES);
    }
  }

  /** Waits (at most `ms`) for the rest of the output of a process that has exited. */
  async drained(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#done, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
    clearTimeout(timer);
  }

  /** The kept tail, trimmed to whole lines and joined into one. */
  text(): string {
    const lines = new TextDecoder().decode(this.#bytes).split("\n");
    if (this.#truncated) lines.shift(); // a partial line
    return lines.map((l) => l.trim()).filter((l) => l !== "").slice(-10).join(" | ");
  }

  /**
   * Stops reading. Containers' conmon processes can inherit the pipe, so end-of-file may
   * never come; cancelling releases it without waiting.
   */
  async close(): Promise<void> {
    await this.#reader.cancel();
    await this.#done;
  }
}
