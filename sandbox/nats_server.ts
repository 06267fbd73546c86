/**
 * Runs a real `nats-server` (JetStream on, loopback only) as a child process, for tests
 * and for `fleet demo`. The binary is `nats-server` from PATH unless
 * `FLEET_NATS_SERVER_BIN` names another one.
 */

import { join } from "node:path";
import { freePort, spawnHelper, stopChild } from "../adapters/process.ts";

/** Environment variable that overrides which `nats-server` binary is started. */
export const NATS_SERVER_BIN_ENV = "FLEET_NATS_SERVER_BIN";

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 20;
const PORT_ATTEMPTS = 5;

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Client port on 127.0.0.1. @default a free port chosen by the OS */
  port?: number;
  /**
   * Folder for the JetStream data, the generated config and the log. It is kept on
   * dispose. @default a new temporary folder, removed on dispose
   */
  storeDir?: string;
  /** Extra nats-server configuration appended verbatim (e.g. an `authorization` block). */
  extraConfig?: string;
  /** Address to listen on (clients and WebSocket). @default "127.0.0.1" */
  host?: string;
  /**
   * Require TLS of clients with this certificate and key (PEM files); `url` is then
   * `tls://...`. `caFile` is the CA the server trusts for client certificates.
   */
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** Also listen for WebSocket clients (with `tls` when it is set); see `wsUrl`. */
  websocket?: boolean;
}

/** A running nats-server child process; `await using` stops it and cleans up. */
export interface NatsServer extends AsyncDisposable {
  /** Client URL, `nats://127.0.0.1:<port>` (`tls://` with `tls`, the `host` when given). */
  readonly url: string;
  readonly port: number;
  /** WebSocket URL (`ws://` or, with `tls`, `wss://`), when started with `websocket`. */
  readonly wsUrl: string | undefined;
  /** Folder holding the JetStream data (`<storeDir>/jetstream`), config and log. */
  readonly storeDir: string;
  /** Path of the server's log file. */
  readonly logFile: string;
  /** Whether the process is currently running. */
  readonly running: boolean;
  /** Graceful stop (SIGTERM), resolved once the process has exited. */
  stop(): Promise<void>;
  /** Hard stop (SIGKILL), to simulate a crash; resolved once the process has exited. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store (stopping it first if running). */
  restart(): Promise<void>;
  /** The last lines of the server log, for error messages. */
  logTail(lines?: number): Promise<string>;
}

/** Starting or stopping the nats-server process failed; the message says what to do. */
export class NatsServerError extends Error {
  override name = "NatsServerError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Starts nats-server with JetStream on 127.0.0.1 (or `host`) and waits until it accepts
 * clients.
 *
 * @throws {NatsServerError} when the binary is missing, the server exits during start-up,
 *   or it is not ready within 10 s (the message includes the end of its log).
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const ownsDir = options.storeDir === undefined;
  const dir = options.storeDir ?? await Deno.makeTempDir({ prefix: "fleet-nats-" });
  try {
    if (!ownsDir) await Deno.mkdir(dir, { recursive: true });
    const server = new NatsServerProcess(dir, ownsDir, options);
    await server.startFirst(options.port);
    return server;
  } catch (err) {
    if (ownsDir) await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

function serverBinary(): string {
  return Deno.env.get(NATS_SERVER_BIN_ENV) ?? "nats-server";
}

/** Thrown internally when the chosen port turned out to be taken, so another is tried. */
class PortInUseError extends NatsServerError {
  override name = "PortInUseError";
}

class NatsServerProcess implements NatsServer {
  readonly storeDir: string;
  readonly logFile: string;
  readonly #configFile: string;
  readonly #ownsDir: boolean;
  readonly #extraConfig: string;
  readonly #host: string;
  readonly #tls: NatsServerOptions["tls"];
  readonly #websocket: boolean;
  #port = 0;
  #wsPort = 0;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #stderr: Promise<string> | undefined;

  constructor(dir: string, ownsDir: boolean, options: NatsServerOptions) {
    this.storeDir = dir;
    this.#ownsDir = ownsDir;
    this.#extraConfig = options.extraConfig ?? "";
    this.#host = options.host ?? "127.0.0.1";
    this.#tls = options.tls;
    this.#websocket = options.websocket ?? false;
    this.logFile = join(dir, "nats-server.log");
    this.#configFile = join(dir, "nats-server.conf");
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `${this.#tls ? "tls" : "nats"}://${this.#host}:${this.#port}`;
  }

  get wsUrl(): string | undefined {
    if (!this.#websocket) return undefined;
    return `${this.#tls ? "wss" : "ws"}://${this.#host}:${this.#wsPort}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async startFirst(port: number | undefined): Promise<void> {
    if (this.#websocket) this.#wsPort = freePort();
    if (port !== undefined) {
      this.#port = port;
      await this.#start();
      return;
    }
    // Another process can take the port between our probe and the server's bind; rare,
    // so a few fresh ports are enough.
    for (let attempt = 1;; attempt++) {
      this.#port = freePort();
      if (this.#websocket) this.#wsPort = freePort();
      try {
        await this.#start();
        return;
      } catch (err) {
        if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  }

  async stop(): Promise<void> {
    await this.#terminate("SIGTERM");
  }

  async kill(): Promise<void> {
    await this.#terminate("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.#start();
  }

  async logTail(lines = LOG_TAIL_LINES): Promise<string> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.logFile);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const all = text.split("\n").filter((line) => line.trim() !== "");
    return all.slice(-lines).join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    if (this.#ownsDir) await Deno.remove(this.storeDir, { recursive: true });
  }

  async #start(): Promise<void> {
    if (this.#child) return;
    await Deno.writeTextFile(this.#configFile, this.#config());
    let child: Deno.ChildProcess;
    try {
      // Spared the terminal's Ctrl-C, which is for our cleanup (that may still need the
      // server); stopped when this process dies.
      child = spawnHelper(serverBinary(), {
        args: ["-c", this.#configFile],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new NatsServerError(
          `Cannot start nats-server: "${serverBinary()}" was not found; install nats-server ` +
            `2.10 or later on PATH or set ${NATS_SERVER_BIN_ENV} to its path`,
          { cause: err },
        );
      }
      throw err;
    }
    this.#child = child;
    this.#exited = child.status;
    // Config errors are printed to stderr before the log file is opened.
    this.#stderr = new Response(child.stderr).text();
    try {
      await this.#waitReady();
    } catch (err) {
      await this.#terminate("SIGKILL");
      throw err;
    }
  }

  #config(): string {
    const tls = this.#tls;
    const tlsBlock = (indent: string): string[] =>
      tls === undefined ? [] : [
        `${indent}tls {`,
        `${indent}  cert_file: ${JSON.stringify(tls.certFile)}`,
        `${indent}  key_file: ${JSON.stringify(tls.keyFile)}`,
        ...(tls.caFile !== undefined ? [`${indent}  ca_file: ${JSON.stringify(tls.caFile)}`] : []),
        `${indent}}`,
      ];
    const websocket = !this.#websocket ? [] : [
      `websocket {`,
      `  listen: "${this.#host}:${this.#wsPort}"`,
      ...(tls === undefined ? [`  no_tls: true`] : tlsBlock("  ")),
      `}`,
    ];
    return [
      `listen: "${this.#host}:${this.#port}"`,
      ...tlsBlock(""),
      ...websocket,
      `server_name: "fleet-test-${this.#port}"`,
      `jetstream {`,
      `  store_dir: ${JSON.stringify(this.storeDir)}`,
      `}`,
      `log_file: ${JSON.stringify(this.logFile)}`,
      `debug: false`,
      `trace: false`,
      `logtime: true`,
      this.#extraConfig,
      "",
    ].join("\n");
  }

  /** Ready = a TCP client receives the INFO line, which the server sends only once
   * JetStream has been enabled and its streams restored from disk. */
  async #waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const exited = this.#exited;
    if (!exited) throw new NatsServerError("nats-server was not started");
    let exitStatus: Deno.CommandStatus | undefined;
    exited.then((status) => exitStatus = status, () => {});
    while (Date.now() < deadline) {
      if (exitStatus) break;
      if (await this.#probe()) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const stderr = exitStatus ? (await this.#stderr ?? "").trim() : "";
    const tail = [stderr, await this.logTail()].filter((s) => s !== "").join("\n");
    if (exitStatus && /address already in use/i.test(tail)) {
      throw new PortInUseError(
        `nats-server could not listen on ${this.#host}:${this.#port}: ${tail}`,
      );
    }
    const why = exitStatus
      ? `exited with code ${exitStatus.code} during start-up`
      : `did not accept clients on ${this.#host}:${this.#port} within ${READY_TIMEOUT_MS / 1000} s`;
    // A temporary folder is removed after a failed start, so only name a config that stays.
    const config = this.#ownsDir ? "" : ` (config ${this.#configFile})`;
    throw new NatsServerError(
      `nats-server ${why}${config}; last log lines:\n${tail || "(empty)"}`,
    );
  }

  async #probe(): Promise<boolean> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: this.#host, port: this.#port });
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionRefused) return false;
      throw err;
    }
    const buf = new Uint8Array(4096);
    let closed = false;
    const timer = setTimeout(() => {
      closed = true;
      conn.close();
    }, 1000);
    let n: number | null = null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      // Closed by our timer or reset by a server that is shutting down: not ready yet.
      if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.ConnectionReset)) {
        throw err;
      }
    } finally {
      clearTimeout(timer);
      if (!closed) conn.close();
    }
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("INFO ");
  }

  async #terminate(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    await stopChild(child, exited, signal, STOP_TIMEOUT_MS);
    await this.#stderr;
    this.#child = undefined;
    this.#exited = undefined;
    this.#stderr = undefined;
  }
}
