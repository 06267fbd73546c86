/**
 * HAProxy (Debian's `haproxy`) terminating TLS in front of nats-server's WebSocket listener,
 * as the OpenShift router does for an edge-terminated Route: HTTP mode, the WebSocket upgrade
 * passed through, then a long-lived tunnel to the backend in clear. Runs in the foreground
 * (`-db`) with its own config in a temp dir; stops and starts again on the same port.
 */
import { join } from "node:path";
import { freePort, spawnHelper, stopChild } from "../adapters/process.ts";
import { waitFor } from "../adapters/timers.ts";

/** The router's defaults: 5 s to connect, 30 s of HTTP idleness, 1 h for an upgraded tunnel. */
const TIMEOUTS = ["connect 5s", "client 30s", "server 30s", "tunnel 1h"];
const READY_MS = 10_000;
const STOP_MS = 10_000;

export interface EdgeProxyOptions {
  /** `host:port` of the backend's WebSocket listener (clear, `no_tls`). */
  backend: string;
  /** The certificate and key (PEM files) the proxy presents to clients. */
  certFile: string;
  keyFile: string;
}

/** A running HAProxy; `await using` stops it and removes its folder. */
export interface EdgeProxy extends AsyncDisposable {
  /** `wss://127.0.0.1:<port>`: what a device puts in `nats.urls`. */
  readonly url: string;
  readonly port: number;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Graceful stop (SIGTERM: open tunnels are cut), resolved once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same certificate. */
  start(): Promise<void>;
  /** Stops it (if running) and starts it again. */
  restart(): Promise<void>;
}

/** Starts HAProxy on a free loopback port and waits until it accepts connections. */
export async function startEdgeProxy(options: EdgeProxyOptions): Promise<EdgeProxy> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-haproxy-" });
  // HAProxy reads the certificate and its key from one file.
  const pem = join(dir, "proxy.pem");
  await Deno.writeTextFile(
    pem,
    (await Deno.readTextFile(options.certFile)) + (await Deno.readTextFile(options.keyFile)),
  );
  const port = freePort();
  const config = join(dir, "haproxy.cfg");
  await Deno.writeTextFile(config, haproxyConfig(port, pem, options.backend));
  const proxy = new HaproxyProcess(config, port, dir);
  try {
    await proxy.start();
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return proxy;
}

function haproxyConfig(port: number, pem: string, backend: string): string {
  return [
    "global",
    "  maxconn 4096",
    "defaults",
    "  mode http",
    ...TIMEOUTS.map((t) => `  timeout ${t}`),
    "frontend nats_wss",
    `  bind 127.0.0.1:${port} ssl crt ${pem}`,
    "  default_backend nats_ws",
    "backend nats_ws",
    `  server nats ${backend}`,
    "",
  ].join("\n");
}

class HaproxyProcess implements EdgeProxy {
  readonly port: number;
  readonly #config: string;
  readonly #dir: string;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #stderr: Promise<string> | undefined;

  constructor(config: string, port: number, dir: string) {
    this.#config = config;
    this.port = port;
    this.#dir = dir;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    let child: Deno.ChildProcess;
    try {
      child = spawnHelper("haproxy", {
        args: ["-db", "-f", this.#config],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot start haproxy: it is not on PATH; install it (apt-get install haproxy, or ` +
            `scripts/install.sh test)`,
          { cause: err },
        );
      }
      throw err;
    }
    this.#child = child;
    this.#exited = child.status;
    this.#stderr = new Response(child.stderr).text();
    let exit: Deno.CommandStatus | undefined;
    this.#exited.then((s) => exit = s, () => {});
    try {
      await waitFor(
        `haproxy to listen on 127.0.0.1:${this.port}`,
        async () => {
          if (exit) throw new Error(`haproxy exited with code ${exit.code}: ${await this.#stderr}`);
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
            return true;
          } catch (err) {
            if (err instanceof Deno.errors.ConnectionRefused) return undefined;
            throw err;
          }
        },
        READY_MS,
        20,
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    await stopChild(child, exited, "SIGTERM", STOP_MS);
    await this.#stderr;
    this.#child = undefined;
    this.#exited = undefined;
    this.#stderr = undefined;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.#dir, { recursive: true });
  }
}
