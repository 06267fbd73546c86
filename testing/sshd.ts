/**
 * A real OpenSSH server for tests: its own host key, one authorized client key, a random
 * loopback port, a temp dir; `await using` stops it. Needs `/usr/sbin/sshd` and root (sshd
 * switches to the logged-in user).
 */
import { freePort, stopChild } from "../adapters/process.ts";
import { waitFor } from "../adapters/timers.ts";
import { spawnCollect, TargetError } from "../adapters/host/target.ts";
import { hostKeyFingerprint } from "../core/host_key.ts";

export interface SshServer extends AsyncDisposable {
  readonly port: number;
  /** Private key the server accepts, for `ssh -i`. */
  readonly clientKey: string;
  /** A known_hosts file holding the server's key. */
  readonly knownHosts: string;
  /** Its host key's fingerprint, `SHA256:…`. */
  readonly hostKeyFingerprint: string;
  /** What sshd logged so far (logins show as `Accepted publickey`). */
  log(): string;
}

const SSHD = "/usr/sbin/sshd";

async function must(cmd: string, args: string[]): Promise<void> {
  const r = await spawnCollect(cmd, args);
  if (r.code !== 0) throw new TargetError(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
}

export interface SshServerOptions {
  /** Listen there (e.g. to take over another server's address). */
  port?: number;
  /**
   * Run sshd, and so every session, in its own mount namespace with an overlay on /etc: what
   * a test writes there as root (a config, a group) stays in the server's temp dir, so this
   * machine can play a device without being changed. Needs `unshare` and overlayfs.
   */
  privateEtc?: boolean;
}

export async function startSshServer(options: SshServerOptions = {}): Promise<SshServer> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-sshd-" });
  const port = options.port ?? freePort();
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host_key`]);
  await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/client_key`]);
  await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
  const hostPub = (await Deno.readTextFile(`${dir}/host_key.pub`)).trim().split(" ");
  await Deno.writeTextFile(
    `${dir}/known_hosts`,
    `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`,
  );
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      // The temp dir is not owned the way sshd insists on for home directories.
      "StrictModes no",
      "UsePAM no",
      "PidFile none",
      `Subsystem sftp internal-sftp`,
      "",
    ].join("\n"),
  );
  // sshd refuses to start without its privilege separation directory.
  await Deno.mkdir("/run/sshd", { recursive: true });
  const sshd = [SSHD, "-D", "-e", "-f", `${dir}/sshd_config`];
  if (options.privateEtc) {
    await Deno.mkdir(`${dir}/etc-upper`);
    await Deno.mkdir(`${dir}/etc-work`);
  }
  const [program, ...args] = options.privateEtc
    ? [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec "$@"',
      "sh",
      `${dir}/etc-upper`,
      `${dir}/etc-work`,
      ...sshd,
    ]
    : sshd;
  const child = new Deno.Command(program!, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let logged = "";
  const reading = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (logged += chunk) }),
  );
  const stop = async () => {
    await stopChild(child, child.status, "SIGTERM", 5_000);
    await reading.catch(() => undefined);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitFor(
      `sshd on 127.0.0.1:${port}`,
      async () => {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      },
      10_000,
      50,
    );
  } catch {
    await stop();
    throw new TargetError(`sshd did not listen on 127.0.0.1:${port} within 10 s`);
  }
  return {
    port,
    clientKey: `${dir}/client_key`,
    knownHosts: `${dir}/known_hosts`,
    hostKeyFingerprint: await hostKeyFingerprint(hostPub[1]!),
    log: () => logged,
    [Symbol.asyncDispose]: stop,
  };
}
