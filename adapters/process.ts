/** Child processes the fixtures start (nats-server, kube-apiserver, etcd): ports and stopping. */

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
  try {
    child.kill(signal);
  } catch (error) {
    // Already exited (e.g. crashed): nothing to signal.
    if (!(error instanceof TypeError)) throw error;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const result = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}

/** A free TCP port on 127.0.0.1, chosen by the OS (callers retry on the rare race). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
