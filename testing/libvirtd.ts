/**
 * A libvirt daemon for tests: the host's system daemon when one answers, else a `libvirtd`
 * of our own (with `virtlogd`, which it needs to start a domain) listening on a socket in a
 * temporary folder, stopped again on dispose. Needs root, as the system daemon does.
 */
import { VmHostError } from "../vm/mod.ts";
import { Libvirt, SYSTEM_URI } from "../adapters/vm/libvirt.ts";
import { findTool } from "../adapters/vm/tools.ts";
import { waitFor } from "../adapters/timers.ts";

export interface LibvirtDaemon extends AsyncDisposable {
  /** The connection URI to give `LIBVIRT_DEFAULT_URI`. */
  readonly uri: string;
}

const READY_TIMEOUT_MS = 30_000;
/** Where libvirt's qemu driver and virtlogd write, as the packaged daemon has it. */
const LOG_DIR = "/var/log/libvirt/qemu";
const VIRTLOGD_SOCKET = "/run/libvirt/virtlogd-sock";

/** @throws {VmHostError} when libvirt is not installed or the daemon does not come up. */
export async function startLibvirtd(): Promise<LibvirtDaemon> {
  if (await Libvirt.connect(SYSTEM_URI) instanceof Libvirt) {
    return { uri: SYSTEM_URI, [Symbol.asyncDispose]: () => Promise.resolve() };
  }
  if (Deno.uid() !== 0) {
    throw new VmHostError("A libvirt daemon of our own runs in system mode, which needs root");
  }
  const dir = await Deno.makeTempDir({ prefix: "fleet-libvirtd-" });
  const children: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await Deno.mkdir(LOG_DIR, { recursive: true });
    // virtlogd's socket has a fixed place: one that answers is shared, not replaced. A
    // virtlogd stopped by SIGTERM leaves its socket file behind, so the file alone says nothing.
    if (!(await answers(VIRTLOGD_SOCKET))) {
      await Deno.remove(VIRTLOGD_SOCKET).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      children.push(daemon("virtlogd", dir, `log_outputs = "3:file:${dir}/virtlogd.log"\n`));
    }
    children.push(daemon(
      "libvirtd",
      dir,
      `unix_sock_dir = "${dir}"\nlog_outputs = "3:file:${dir}/libvirtd.log"\n`,
    ));
    const uri = `qemu:///system?socket=${dir}/libvirt-sock`;
    let last = "";
    const up = await waitFor(
      "libvirtd",
      async () => {
        const found = await Libvirt.connect(uri);
        if (found instanceof Libvirt && await answers(VIRTLOGD_SOCKET)) return true;
        last = found instanceof Libvirt ? "virtlogd is not listening" : found.unavailable;
        return false;
      },
      READY_TIMEOUT_MS,
      200,
    ).catch(() => false);
    if (up) return { uri, [Symbol.asyncDispose]: stop };
    let log = "";
    try {
      log = (await Deno.readTextFile(`${dir}/libvirtd.log`)).trim().split("\n").slice(-5).join(
        " | ",
      );
    } catch {
      // no log written
    }
    throw new VmHostError(
      `libvirtd did not answer within ${READY_TIMEOUT_MS / 1000} s (${last}); its log: ${log}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Starts `name` in the foreground (so it stops with us) with `config` in `dir`. */
function daemon(name: string, dir: string, config: string): Deno.ChildProcess {
  const configFile = `${dir}/${name}.conf`;
  Deno.writeTextFileSync(configFile, config);
  return new Deno.Command(findTool(name), {
    args: ["--config", configFile, ...(name === "libvirtd" ? ["--pid-file", `${dir}/pid`] : [])],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Whether something accepts connections on the unix socket at `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const connection = await Deno.connect({ transport: "unix", path });
    connection.close();
    return true;
  } catch {
    return false;
  }
}
