/** A `fleet` process a story talks to: its stdin, its output as it comes, Ctrl-C, its exit. */
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** A process whose stdin the test writes and whose output it reads as it comes. */
export class Interactive implements AsyncDisposable {
  stdout = "";
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;

  constructor(command: string, args: string[]) {
    this.#child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const read = async (stream: ReadableStream<Uint8Array>, to: "stdout" | "stderr") => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) this[to] += chunk;
    };
    this.#reading = Promise.all([
      read(this.#child.stdout, "stdout"),
      read(this.#child.stderr, "stderr"),
    ]).then(() => {});
  }

  /** `fleet <args>` with its stdin from the test. */
  static fleet(args: string[]): Interactive {
    return new Interactive(Deno.execPath(), ["run", "-A", MAIN, ...args]);
  }

  /**
   * `fleet <args>` in a terminal of `rows` × `cols`, as a person's shell runs it: util-linux
   * `script` gives it a pseudo-terminal and passes the test's bytes (Ctrl-C too) as typed keys.
   */
  static inTerminal(args: string[], rows: number, cols: number): Interactive {
    const command = [Deno.execPath(), "run", "-A", MAIN, ...args].map(quote).join(" ");
    return new Interactive("script", [
      "-qefc",
      `stty rows ${rows} cols ${cols}; exec ${command}`,
      "/dev/null",
    ]);
  }

  async write(data: string | Uint8Array): Promise<void> {
    await this.#stdin.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Ctrl-C, as a shell sends it to the program in the foreground. */
  interrupt(): void {
    this.#child.kill("SIGINT");
  }

  async closeStdin(): Promise<void> {
    await this.#stdin.close();
  }

  async exit(): Promise<number> {
    const { code } = await this.#child.status;
    await this.#reading;
    return code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#stdin.close().catch(() => {
      // Closed already, or the process is gone.
    });
    await this.exit();
  }
}

/** `text` as one word for a POSIX shell. */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
