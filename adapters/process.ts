/**
 * Child processes the fixtures and `fleet demo` start (nats-server, podman, kube-apiserver, etcd):
 * finding, starting, ports and stopping.
 */

/**
 * The full path of `program`: itself when it holds a '/', else the first file of that name in
 * `$PATH`, then in `extraDirs`; undefined when there is none.
 */
export function findExecutable(
  program: string,
  extraDirs: readonly string[] = [],
): string | undefined {
  if (program.includes("/")) return isFile(program) ? program : undefined;
  const path = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  return [...path, ...extraDirs].map((dir) => `${dir}/${program}`).find(isFile);
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    // Missing, or a directory on the way we may not read: not here either way.
    return false;
  }
}

/**
 * Starts a server this process relies on (nats-server, a podman service) so that it outlives
 * a Ctrl-C but not this process:
 * - in its own session (`detached`, setsid), so the SIGINT or SIGHUP a terminal sends to its
 *   whole foreground process group reaches only us, and our cleanup can still use the server;
 * - with SIGTERM as its parent-death signal (`setpriv --pdeathsig`, util-linux), so our SIGKILL
 *   or crash stops it too instead of leaving it running. The kernel sends it when the spawning
 *   thread ends: call this from the main thread, not from a Worker.
 *
 * @throws {Deno.errors.NotFound} when `program` is not found (see {@link findExecutable}).
 * @throws {Error} when `setpriv` is missing.
 */
export function spawnHelper(
  program: string,
  options: Omit<Deno.CommandOptions, "detached"> & { args: string[] },
): Deno.ChildProcess {
  const path = findExecutable(program);
  if (path === undefined) throw new Deno.errors.NotFound(`"${program}" was not found on PATH`);
  try {
    return new Deno.Command("setpriv", {
      ...options,
      args: ["--pdeathsig", "TERM", "--", path, ...options.args],
      detached: true,
    }).spawn();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Cannot start ${program}: "setpriv" is not on PATH; install util-linux (apt-get install util-linux)`,
      { cause: error },
    );
  }
}

/**
 * Sends `signal`, waits up to `timeoutMs` for `exited`, then sends SIGKILL and waits again.
 * A child that already exited on its own is fine.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  exited: Promise<unknown>,
  signal: Deno.Signal,
  timeoutMs: number,
): Promise<void> {
  signalChild(child, signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const result = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    // It may exit between the timeout and this signal.
    signalChild(child, "SIGKILL");
    await exited;
  }
}

/** Sends `signal` to `child` unless it has exited already (then there is nothing to signal). */
function signalChild(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
}

/**
 * Ports {@link freePort} handed out. Each is free again once its probe closes, and the OS offers
 * it again soon enough: two servers started side by side were given the same port.
 */
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1, chosen by the OS, never one this process handed out before. */
export function freePort(): number {
  for (let draw = 0; draw < 1_000; draw++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    listener.close();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`The OS offered only ports this process handed out already (${handedOut.size})`);
}
