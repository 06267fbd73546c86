/**
 * A small client of QEMU's machine protocol (QMP) on the unix socket a qemu-started VM has
 * (`-qmp unix:<vm dir>/qmp.sock,server=on,wait=off`): JSON objects, one per line. The server
 * greets, the client leaves negotiation mode with `qmp_capabilities`, then every command
 * gets one reply (`return` or `error`), matched here by its `id`; asynchronous events
 * (`RESET`, `SHUTDOWN`, ...) may arrive in between and are kept for the caller.
 */
import { VmHostError } from "../../vm/mod.ts";

/** How long connecting, the greeting and each command may take. */
const DEFAULT_TIMEOUT_MS = 10_000;

/** qemu answered a command with an error (`class` is QMP's, e.g. `CommandNotFound`). */
export class QmpError extends Error {
  override name = "QmpError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
    options?: ErrorOptions,
  ) {
    super(`qemu refused QMP command "${command}": ${description} (${errorClass})`, options);
  }
}

/** An asynchronous QMP event, e.g. `{ event: "RESET", data: { guest: false, ... } }`. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** What the server says first: its version and capabilities. */
export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

/**
 * One QMP session. `await using qmp = await QmpClient.connect(socket)`; then
 * `await qmp.execute("query-status")` or {@linkcode QmpClient.systemReset}.
 */
export class QmpClient implements AsyncDisposable {
  /** The server's greeting. */
  readonly greeting: QmpGreeting;
  /** Events received so far, oldest first. */
  readonly events: QmpEvent[] = [];
  readonly #conn: Deno.UnixConn;
  readonly #lines: AsyncIterator<string>;
  readonly #socketPath: string;
  readonly #timeoutMs: number;
  #nextId = 1;
  #closed = false;

  private constructor(
    conn: Deno.UnixConn,
    lines: AsyncIterator<string>,
    greeting: QmpGreeting,
    socketPath: string,
    timeoutMs: number,
  ) {
    this.#conn = conn;
    this.#lines = lines;
    this.greeting = greeting;
    this.#socketPath = socketPath;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects, reads the greeting and negotiates capabilities (none are asked for).
   * @param socketPath the VM's QMP socket.
   * @param options.timeoutMs for the connect, the greeting and each command. @default 10000
   * @throws {VmHostError} when nothing listens there, or it does not speak QMP in time.
   */
  static async connect(
    socketPath: string,
    options: { timeoutMs?: number } = {},
  ): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path: socketPath });
    } catch (error) {
      throw new VmHostError(
        `Cannot reach the VM's QMP socket ${socketPath}: ${(error as Error).message} ` +
          `(is its qemu running?)`,
        { cause: error },
      );
    }
    const lines = readLines(conn.readable)[Symbol.asyncIterator]();
    let client: QmpClient | undefined;
    try {
      const first = await withTimeout(lines.next(), timeoutMs, () => conn.close());
      const greeting = first.done ? undefined : (JSON.parse(first.value) as { QMP?: QmpGreeting });
      if (greeting?.QMP === undefined) {
        throw new Error(first.done ? "it closed the connection" : `it said ${first.value}`);
      }
      client = new QmpClient(conn, lines, greeting.QMP, socketPath, timeoutMs);
      await client.execute("qmp_capabilities");
      return client;
    } catch (error) {
      if (client === undefined) closeQuietly(conn);
      else client.close();
      if (error instanceof QmpError) throw error;
      throw new VmHostError(
        `${socketPath} did not greet as a QMP server: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * Runs a command and returns its `return` value; events that arrive meanwhile go to
   * {@linkcode QmpClient.events}.
   * @throws {QmpError} when qemu answers with an error; {VmHostError} when the connection
   *   closes or no answer comes in time (the session is closed then).
   */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) throw new VmHostError(`QMP session on ${this.#socketPath} is closed`);
    const id = this.#nextId++;
    const request = JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id });
    try {
      await withTimeout(
        writeAll(this.#conn, new TextEncoder().encode(request + "\r\n")),
        this.#timeoutMs,
        () => this.close(),
      );
      for (;;) {
        const next = await withTimeout(this.#lines.next(), this.#timeoutMs, () => this.close());
        if (next.done) throw new Error("qemu closed the connection");
        const message = JSON.parse(next.value) as {
          id?: number;
          event?: string;
          return?: unknown;
          error?: { class: string; desc: string };
        };
        if (typeof message.event === "string") {
          this.events.push(message as QmpEvent);
          continue;
        }
        if (message.id !== id) continue; // an answer to a command given up on
        if (message.error) throw new QmpError(command, message.error.class, message.error.desc);
        return message.return;
      }
    } catch (error) {
      if (error instanceof QmpError) throw error;
      this.close();
      throw new VmHostError(
        `QMP command "${command}" on ${this.#socketPath} failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * Presses the VM's reset button (`system_reset`): the guest restarts at once, without
   * shutting down, like a power cycle. For a guest that hangs and answers nothing else.
   */
  async systemReset(): Promise<void> {
    await this.execute("system_reset");
  }

  /** Closes the session; idempotent. The VM keeps running. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let partial = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) if (line.trim() !== "") yield line.trim();
  }
  if (partial.trim() !== "") yield partial.trim();
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** `work`, or a rejection after `ms`, when `onTimeout` runs (it closes the connection). */
async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`no answer within ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
