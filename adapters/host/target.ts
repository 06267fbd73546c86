/**
 * A machine that `fleet device enroll` configures: this one, or one reached over SSH. Commands
 * are argv arrays (quoted for the remote shell here, never by callers); root-only steps ask for
 * `sudo` and get it only when the login user is not root. A sudo password, when one is needed,
 * is fed to `sudo -S` ahead of the command's own input (sudo reads it byte by byte up to the
 * newline, so the rest stays the command's); `-k` makes sudo read it even when it still holds
 * a cached credential, which would otherwise leave the password at the head of that input.
 */

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Run as root. */
  sudo?: boolean;
  /** Bytes for the command's standard input. */
  stdin?: string | Uint8Array;
}

/** A command the target could not run, or one that failed; the message says which and why. */
export class TargetError extends Error {
  override readonly name = "TargetError";
}

export interface Target extends AsyncDisposable {
  /** Where commands run, for messages: `this machine` or `pi@10.0.0.7`. */
  readonly description: string;
  /** Runs a command; a non-zero exit is a result, not an error. */
  run(argv: string[], options?: RunOptions): Promise<CommandResult>;
}

/** Asks the person at the keyboard for the sudo password; undefined = no answer possible. */
export type PasswordPrompt = (question: string) => Promise<string | undefined>;

/** `'…'` quoting for POSIX sh: safe for every byte except NUL. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_./=:@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'"'"'`)}'`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(input: string | Uint8Array | undefined): Uint8Array | undefined {
  return typeof input === "string" ? encoder.encode(input) : input;
}

/** Spawns `cmd args`, feeds stdin, collects output. */
export async function spawnCollect(
  cmd: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { LC_ALL: "C" },
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new TargetError(`Cannot run ${cmd}: it is not installed on this machine`);
    }
    throw err;
  }
  if (stdin) {
    const writer = child.stdin.getWriter();
    // A command that exits without reading all its input is its own result, not ours.
    await writer.write(stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Shared sudo handling: finds out once whether the login user is root, whether sudo needs a
 * password, and asks for it at most once.
 */
export abstract class SudoTarget implements Target {
  abstract readonly description: string;
  readonly #prompt: PasswordPrompt;
  #mode:
    | Promise<{ kind: "root" } | { kind: "nopasswd" } | { kind: "password"; password: string }>
    | undefined;

  constructor(prompt: PasswordPrompt) {
    this.#prompt = prompt;
  }

  /** Runs argv as the login user. */
  protected abstract exec(argv: string[], stdin?: Uint8Array): Promise<CommandResult>;

  abstract [Symbol.asyncDispose](): Promise<void>;

  async run(argv: string[], options: RunOptions = {}): Promise<CommandResult> {
    const stdin = bytes(options.stdin);
    if (!options.sudo) return await this.exec(argv, stdin);
    const mode = await (this.#mode ??= this.#sudoMode());
    if (mode.kind === "root") return await this.exec(argv, stdin);
    if (mode.kind === "nopasswd") return await this.exec(["sudo", "-n", "--", ...argv], stdin);
    const input = new Uint8Array([...encoder.encode(`${mode.password}\n`), ...(stdin ?? [])]);
    return await this.exec(["sudo", "-k", "-S", "-p", "", "--", ...argv], input);
  }

  async #sudoMode() {
    const id = await this.exec(["id", "-u"]);
    if (id.code !== 0) {
      throw new TargetError(`Cannot run commands on ${this.description}: ${id.stderr.trim()}`);
    }
    if (id.stdout.trim() === "0") return { kind: "root" } as const;
    if ((await this.exec(["sudo", "-n", "true"])).code === 0) return { kind: "nopasswd" } as const;
    const password = await this.#prompt(`sudo password on ${this.description}: `);
    if (password === undefined) {
      throw new TargetError(
        `Enrolling needs root on ${this.description}: sudo asks for a password and there is ` +
          `no terminal to type it (run from a terminal, or allow the user sudo without a password)`,
      );
    }
    const check = await this.exec(
      ["sudo", "-k", "-S", "-p", "", "--", "true"],
      encoder.encode(`${password}\n`),
    );
    if (check.code !== 0) {
      throw new TargetError(`sudo on ${this.description} refused the password`);
    }
    return { kind: "password", password } as const;
  }
}

/** This machine. */
export class LocalTarget extends SudoTarget {
  readonly description = "this machine";

  protected override exec(argv: string[], stdin?: Uint8Array): Promise<CommandResult> {
    return spawnCollect(argv[0]!, argv.slice(1), stdin);
  }

  override async [Symbol.asyncDispose](): Promise<void> {}
}
