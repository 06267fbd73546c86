/**
 * A machine reached with the OpenSSH client: key authentication only (BatchMode, so a missing
 * key fails at once instead of prompting), one multiplexed connection for all commands, and
 * only to a host whose key its known_hosts file already holds (see host_key.ts for how a key
 * gets there).
 */
import {
  type CommandResult,
  type PasswordPrompt,
  shellQuote,
  spawnCollect,
  SudoTarget,
  TargetError,
} from "./target.ts";

export interface SshAddress {
  user: string;
  host: string;
  port: number;
}

/**
 * Parses `ssh://user@host[:port]`.
 *
 * @throws {TargetError} naming the value and the expected form.
 */
export function parseSshTarget(text: string): SshAddress {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TargetError(`--target "${text}" is not ssh://user@host[:port]`);
  }
  if (url.protocol !== "ssh:" || url.username === "" || url.hostname === "") {
    throw new TargetError(
      `--target "${text}" is not ssh://user@host[:port] (user and host needed)`,
    );
  }
  if (url.pathname !== "" || url.search !== "" || url.password !== "") {
    throw new TargetError(
      `--target "${text}" has more than ssh://user@host[:port] (no password, path or query)`,
    );
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return { user: decodeURIComponent(url.username), host, port: url.port ? Number(url.port) : 22 };
}

export interface SshTargetOptions {
  address: SshAddress;
  /** Private key file; default: the ssh client's own choice (agent, ~/.ssh/id_*). */
  identityFile?: string;
  /** The known_hosts file holding the host's key; any other key is refused. */
  knownHostsFile: string;
  prompt: PasswordPrompt;
}

export class SshTarget extends SudoTarget {
  readonly description: string;
  readonly #options: SshTargetOptions;
  readonly #controlDir: string;
  #disposed = false;

  private constructor(options: SshTargetOptions, controlDir: string) {
    super(options.prompt);
    this.#options = options;
    this.#controlDir = controlDir;
    const { user, host, port } = options.address;
    this.description = `${user}@${host}${port === 22 ? "" : `:${port}`}`;
  }

  /**
   * Opens the connection (and proves it with `true`).
   *
   * @throws {TargetError} with ssh's own reason when the machine cannot be reached or refuses.
   */
  static async connect(options: SshTargetOptions): Promise<SshTarget> {
    const dir = await Deno.makeTempDir({ prefix: "fleet-ssh-" });
    const target = new SshTarget(options, dir);
    const probe = await target.exec(["true"]);
    if (probe.code !== 0) {
      await target[Symbol.asyncDispose]();
      throw new TargetError(
        `Cannot log in to ${target.description} over SSH: ${
          probe.stderr.trim() || `ssh exited with ${probe.code}`
        } (Fleet uses key authentication: check the key with ssh ${target.description} true)`,
      );
    }
    return target;
  }

  #sshArgs(): string[] {
    const { address, identityFile, knownHostsFile } = this.#options;
    const args = [
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=15",
      "-o",
      "ServerAliveInterval=15",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "ControlMaster=auto",
      "-o",
      `ControlPath=${this.#controlDir}/%C`,
      "-o",
      "ControlPersist=120",
      "-p",
      String(address.port),
      "-l",
      address.user,
    ];
    if (identityFile) args.push("-i", identityFile, "-o", "IdentitiesOnly=yes");
    args.push("-o", `UserKnownHostsFile=${knownHostsFile}`, "-o", "GlobalKnownHostsFile=none");
    return args;
  }

  protected override exec(argv: string[], stdin?: Uint8Array): Promise<CommandResult> {
    // ssh joins its arguments into one line for the remote shell: quote each word ourselves.
    return spawnCollect(
      "ssh",
      [...this.#sshArgs(), this.#options.address.host, "--", argv.map(shellQuote).join(" ")],
      stdin,
    );
  }

  /** Idempotent: a second dispose (e.g. in a `finally` after a reboot disposed it) is a no-op. */
  override async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await spawnCollect("ssh", [...this.#sshArgs(), "-O", "exit", this.#options.address.host])
      .catch(() => undefined);
    await Deno.remove(this.#controlDir, { recursive: true });
  }
}
