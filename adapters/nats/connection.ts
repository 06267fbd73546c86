/**
 * Opens the long-lived NATS connection of a Fleet process: never gives up reconnecting,
 * survives starting while NATS is down, and tells a field engineer in plain words what
 * the connection is doing.
 */

import {
  AuthorizationError,
  InvalidArgumentError,
  type NatsConnection,
  PermissionViolationError,
  type Status,
  UserAuthenticationExpiredError,
  wsconnect,
  type WsConnectionOptions,
} from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { createHash, X509Certificate } from "node:crypto";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { type ErrorKind, errorMessage, FleetError } from "../../core/errors.ts";
import type { Logger } from "../logger.ts";
import type { CredentialOptions, CredentialSource } from "./credentials.ts";
import {
  certificateRefusal,
  type NatsTls,
  PIN_COMMAND,
  plaintextTokenProblem,
  planTransport,
  serverHosts,
  type TransportPlan,
} from "./transport.ts";

/** Options of {@link connectNats}. */
export interface ConnectNatsOptions {
  /** Server URLs, e.g. `["nats://10.0.0.5:4222"]`; at least one. */
  servers: string[];
  credentials: CredentialSource;
  /** Connection name shown by the server's monitoring, e.g. `fleet-agent-dev1`. */
  name: string;
  logger: Logger;
  /**
   * Keep trying when no server is reachable for the first connect, instead of failing.
   * @default true
   */
  waitOnFirstConnect?: boolean;
  /**
   * Base wait between reconnect attempts; the client adds up to half of it at random.
   * @default 1000, with up to 500 (1000 over TLS) at random
   */
  reconnectWaitMs?: number;
  /** Stops the first-connect attempts; the promise then rejects with {@link NatsConnectError}. */
  signal?: AbortSignal;
  /** CA file and server pin; either one makes every TCP connection require TLS. */
  tls?: NatsTls;
}

/**
 * Connecting to NATS failed (or was stopped); the message names the servers. Its kind is
 * `usage` when the options themselves are refused (asking differently fixes it).
 */
export class NatsConnectError extends FleetError {
  override name = "NatsConnectError";
  /** The servers that were tried. */
  readonly servers: readonly string[];
  constructor(
    message: string,
    servers: readonly string[],
    options?: ErrorOptions,
    kind: ErrorKind = "failure",
  ) {
    super(kind, message, options);
    this.servers = servers;
  }
}

/** Base wait between reconnect attempts; the client adds up to `JITTER_MS` at random. */
const RECONNECT_WAIT_MS = 1_000;
const JITTER_MS = 500;
const JITTER_TLS_MS = 1_000;
/** Pings every 30 s, two unanswered = stale: a silently dead link is noticed in ~1 min
 * instead of the client default of ~4-6 min. */
const PING_INTERVAL_MS = 30_000;
const MAX_PINGS_OUT = 2;

/**
 * Connects to NATS and keeps the connection alive for the life of the process.
 *
 * The connection reconnects forever (`maxReconnectAttempts: -1`, ~1 s between attempts
 * plus jitter), also after the server rejects the credentials (a token source may fix
 * them on the next attempt). Every status change is logged in plain words; repeated
 * "still trying" lines are thinned out to attempts 1, 2, 4, 8, ... and then once a minute.
 *
 * When no server is reachable at start and `waitOnFirstConnect` is true (the default),
 * the returned promise stays pending, retrying in the background, until a server answers
 * or `signal` aborts; it does not reject because NATS is down. A caller that must carry on
 * meanwhile (the agent with its cached desired state) should not await it first: see
 * {@link connectNatsInBackground}.
 *
 * `ws://` and `wss://` URLs connect over Deno's WebSocket, the others over TCP; `tls://`
 * or a CA file or pin make it TLS (see {@link planTransport}). Credentials that are a
 * bearer token are never sent in clear beyond loopback.
 *
 * Installs the process-wide {@link installConnectionResetGuard} on first use.
 *
 * @throws {NatsConnectError} when `signal` aborts before a server was reached, when the
 *   options are invalid (including a bearer token over plaintext to another machine), or
 *   (with `waitOnFirstConnect: false`) when the first attempt fails.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const { servers, credentials, name, signal } = options;
  const logger = options.logger.with({ component: "nats" });
  const where = servers.map(hostPort).join(", ");
  installConnectionResetGuard(options.logger);
  if (servers.length === 0 || servers.some((s) => s.trim() === "" || /\s/.test(s))) {
    throw new NatsConnectError(
      `Invalid NATS server list ${JSON.stringify(servers)}: give at least one URL such as ` +
        `"nats://127.0.0.1:4222", without spaces`,
      servers,
      undefined,
      "usage",
    );
  }
  const tls = options.tls ?? {};
  const plan = planTransport(servers, tls);
  if (plan.kind === "invalid") {
    throw new NatsConnectError(plan.problem, servers, undefined, "usage");
  }
  const tokenProblem = credentials.bearer ? plaintextTokenProblem(plan.plaintext) : undefined;
  if (tokenProblem !== undefined) {
    throw new NatsConnectError(tokenProblem, servers, undefined, "usage");
  }
  const transport = await transportOptions(plan, tls, servers, credentials);
  const waitOnFirstConnect = options.waitOnFirstConnect ?? true;
  const reconnectWait = options.reconnectWaitMs ?? RECONNECT_WAIT_MS;
  const jitter = options.reconnectWaitMs === undefined ? JITTER_MS : reconnectWait / 2;
  const jitterTls = options.reconnectWaitMs === undefined ? JITTER_TLS_MS : reconnectWait / 2;
  const stillTrying = new Thinner();
  for (let attempt = 1;; attempt++) {
    if (signal?.aborted) {
      throw new NatsConnectError(
        `Stopped connecting to NATS at ${where} before it could be reached`,
        servers,
        { cause: signal.reason },
      );
    }
    /** Fails now, or logs (thinned out) and waits before the next attempt. */
    const failOrWait = async (problem: string, err: unknown): Promise<void> => {
      if (!waitOnFirstConnect) throw new NatsConnectError(problem, servers, { cause: err });
      if (stillTrying.shouldLog(attempt)) {
        logger.warn(`${problem}; still trying in the background`, { attempt });
      }
      await sleep(reconnectWait + Math.random() * jitter, signal);
    };
    let auth: CredentialOptions;
    try {
      auth = await credentials.connectionOptions();
    } catch (err) {
      await failOrWait(
        `Cannot get the credentials for NATS (${credentials.describe()}): ${errorMessage(err)}`,
        err,
      );
      continue;
    }
    let nc: NatsConnection;
    try {
      const connectOptions: WsConnectionOptions = {
        ...auth,
        ...transport,
        servers,
        name,
        waitOnFirstConnect: false,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: reconnectWait,
        reconnectJitter: jitter,
        reconnectJitterTLS: jitterTls,
        pingInterval: PING_INTERVAL_MS,
        maxPingOut: MAX_PINGS_OUT,
        // Without this the client closes for good after two auth failures in a row.
        ignoreAuthErrorAbort: true,
        // Otherwise every request builds two errors up front for their stack traces: 15 %
        // of the operator's CPU in the 100,000-device benchmark.
        noAsyncTraces: true,
      };
      nc = plan.kind === "websocket"
        ? await wsconnect(connectOptions)
        : await connect(connectOptions);
    } catch (err) {
      if (err instanceof InvalidArgumentError || err instanceof TypeError) {
        throw new NatsConnectError(
          `Cannot connect to NATS at ${where}: ${errorMessage(err)}; check the server URLs ` +
            `and options`,
          servers,
          { cause: err },
        );
      }
      const refused = certificateRefusal(errorMessage(err), tls);
      await failOrWait(
        refused !== undefined
          // The URLs as configured: which of wss://, tls:// and CA file is in play matters.
          ? `Cannot connect to NATS at ${servers.join(", ")}: ${refused}`
          : `Cannot connect to NATS at ${where}: ${errorMessage(err)}${authHint(err, credentials)}`,
        err,
      );
      continue;
    }
    if (plan.kind === "websocket") withoutRedialEchoes(nc);
    if (signal?.aborted) {
      await nc.close();
      continue; // reports the abort at the top of the loop
    }
    logger.info(`Connected to NATS at ${hostPort(nc.getServer())}`, {
      name,
      ...(attempt > 1 ? { attempts: attempt } : {}),
    });
    logStatus(nc, logger, credentials);
    return nc;
  }
}

/**
 * The connection options that carry `plan` out: the WebSocket factory (with the CA) or the
 * TLS settings (CA, server-name check and pin). Over WebSocket, and with a bearer token and
 * plaintext (allowed to loopback only), the servers a cluster advertises are ignored: they
 * could be elsewhere.
 */
async function transportOptions(
  plan: Exclude<TransportPlan, { kind: "invalid" }>,
  tls: NatsTls,
  servers: readonly string[],
  credentials: CredentialSource,
): Promise<WsConnectionOptions> {
  const stayOnLoopback = credentials.bearer === true && plan.plaintext.length > 0
    ? { ignoreClusterUpdates: true }
    : {};
  if (plan.kind === "websocket") {
    // A WebSocket URL is usually a route or ingress in front of the cluster: the servers the
    // cluster advertises are its pods' own listeners, unreachable from a device or, worse,
    // someone else's address there, and in clear (ws://) behind an edge-TLS route.
    const caCerts = tls.caFile === undefined ? undefined : [await readCaFile(tls.caFile, servers)];
    return {
      ignoreClusterUpdates: true,
      wsFactory: (url) => {
        const client = caCerts === undefined ? undefined : Deno.createHttpClient({ caCerts });
        const socket = client === undefined ? new WebSocket(url) : new WebSocket(url, { client });
        if (client !== undefined) {
          socket.addEventListener("close", () => client.close(), { once: true });
        }
        return Promise.resolve({
          socket: coalescingSends(socket),
          encrypted: url.startsWith("wss://"),
        });
      },
    };
  }
  if (plan.plaintext.length > 0) return stayOnLoopback;
  if (tls.caFile !== undefined) await readCaFile(tls.caFile, servers); // a clear error first
  const hosts = serverHosts(servers);
  const tlsOptions = {
    ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
    checkServerIdentity: (host: string, cert: PeerCertificate): Error | undefined =>
      verifyServerCertificate(host, cert, hosts, tls.pin),
  };
  // nats.js hands its tls options to node:tls's connect, which takes checkServerIdentity.
  return { tls: tlsOptions };
}

/**
 * Sends what one turn of the event loop hands `socket` as one WebSocket frame. Deno's WebSocket
 * sends each `send()` as a frame of its own with Nagle's algorithm on, and nats.js sends
 * CONNECT and PING separately: the PING waited for the server's delayed ACK, 40 ms of every
 * connect (45 ms instead of 2 to a local nats-server). NATS reads the frames as one byte
 * stream. `close()` sends what is still queued first.
 */
function coalescingSends(socket: WebSocket): WebSocket {
  const send = socket.send.bind(socket);
  const close = socket.close.bind(socket);
  let queued: Uint8Array[] = [];
  const flush = (): void => {
    if (queued.length === 0) return;
    if (socket.readyState !== WebSocket.OPEN) {
      // What nats.js does with a write that fails: drop it; a read or the pings notice.
      queued = [];
      return;
    }
    const chunks = queued;
    queued = [];
    if (chunks.length === 1) return send(chunks[0]!);
    const frame = new Uint8Array(chunks.reduce((n, chunk) => n + chunk.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      frame.set(chunk, at);
      at += chunk.length;
    }
    send(frame);
  };
  socket.send = (data) => {
    if (!(data instanceof ArrayBuffer)) {
      flush();
      return send(data);
    }
    // A copy: the caller may reuse its buffer before the frame goes out.
    queued.push(new Uint8Array(data.slice(0)));
    if (queued.length === 1) queueMicrotask(flush);
  };
  socket.close = (code, reason) => {
    flush();
    close(code, reason);
  };
  return socket;
}

/** The part of nats.js's connection that {@link withoutRedialEchoes} adjusts. */
interface Redialling {
  protocol?: {
    connectPromise?: Promise<void> | null;
    disconnected?: (err?: Error) => Promise<void>;
  };
}

/**
 * nats.js 3.4's WebSocket transport also reports the close of each failed reconnect attempt
 * as a lost connection: after N failed attempts the connection sent N "disconnect" and, once
 * back, N "reconnect" statuses (TCP sends one of each). The logs then said "Lost connection"
 * N times and "Reconnected after" the last attempt only, and whoever resyncs on a reconnect
 * (agent reports, the operator's device consumers) did it N times. A disconnect while the
 * client is already redialling is that echo, and is dropped here.
 *
 * @throws {Error} when nats.js no longer has the shape this relies on (a dependency update).
 */
function withoutRedialEchoes(nc: NatsConnection): void {
  const protocol = (nc as Redialling).protocol;
  const disconnected = protocol?.disconnected;
  if (protocol === undefined || disconnected === undefined || !("connectPromise" in protocol)) {
    throw new Error(
      "nats.js's connection no longer has protocol.disconnected and connectPromise; " +
        "check withoutRedialEchoes() against the new version",
    );
  }
  protocol.disconnected = (err) =>
    protocol.connectPromise ? Promise.resolve() : disconnected.call(protocol, err);
}

async function readCaFile(file: string, servers: readonly string[]): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (err) {
    throw new NatsConnectError(
      `Cannot read the NATS CA file ${file}: ${errorMessage(err)}; give the PEM file of the ` +
        `CA that signed the server's certificate`,
      servers,
      { cause: err },
    );
  }
}

/**
 * Checks the server's certificate (its chain is already verified against the CA) names the
 * server, and matches the pin when one is set.
 *
 * For a URL with an IP address nats.js sets no TLS server name, and node:tls then checks the
 * certificate against "localhost" (any certificate of the CA issued for localhost passed for
 * any address): when `host` is "localhost", it must name one of the configured hosts instead.
 */
export function verifyServerCertificate(
  host: string,
  cert: PeerCertificate,
  configuredHosts: readonly string[],
  pin: string | undefined,
): Error | undefined {
  const names = host === "localhost" ? configuredHosts : [host];
  const mismatch = names.map((name) => checkServerIdentity(name, cert));
  if (!mismatch.some((err) => err === undefined)) {
    return new Error(
      `the server's certificate is not issued for ${names.join(" or ")} ` +
        `(${cert.subjectaltname ?? "no subject alternative names"})`,
    );
  }
  if (pin === undefined) return undefined;
  const spki = new X509Certificate(cert.raw).publicKey.export({ type: "spki", format: "der" });
  const actual = `sha256//${createHash("sha256").update(spki).digest("base64")}`;
  if (actual === pin) return undefined;
  return new Error(
    `the server's public key ${actual} does not match the pin ${pin} (printed by: ` +
      `${PIN_COMMAND})`,
  );
}

/**
 * Starts {@link connectNats} without making the caller wait: the returned promise resolves
 * with the connection once a server answers, or with `undefined` when `signal` aborts first.
 * It does not reject for an unreachable server, so it is safe to leave un-awaited while
 * the caller works from cached state; it rejects only for invalid options.
 */
export function connectNatsInBackground(
  options: Omit<ConnectNatsOptions, "waitOnFirstConnect" | "signal"> & { signal: AbortSignal },
): Promise<NatsConnection | undefined> {
  return connectNats({ ...options, waitOnFirstConnect: true }).catch((err: unknown) => {
    if (options.signal.aborted && err instanceof NatsConnectError) return undefined;
    throw err;
  });
}

/** Logs the connection's status events until it closes. */
function logStatus(nc: NatsConnection, logger: Logger, credentials: CredentialSource): void {
  let disconnectedAt = 0;
  let attempts = 0;
  let server = hostPort(nc.getServer());
  const stillTrying = new Thinner();
  const authErrors = new Thinner();
  const describe = (s: Status): void => {
    switch (s.type) {
      case "disconnect":
        disconnectedAt = Date.now();
        attempts = 0;
        server = hostPort(s.server);
        logger.warn(
          `Lost connection to NATS at ${server}; reconnecting in the background ` +
            `(running containers are not affected)`,
        );
        return;
      case "reconnecting":
        attempts++;
        if (attempts > 1 && stillTrying.shouldLog(attempts - 1)) {
          logger.info(`Still trying to reach NATS (last server ${server})`, {
            attempt: attempts - 1,
            disconnectedFor: `${secondsSince(disconnectedAt)}s`,
          });
        }
        return;
      case "reconnect":
        server = hostPort(s.server);
        logger.info(
          `Reconnected to NATS at ${server} after ${secondsSince(disconnectedAt)} s`,
          { attempts },
        );
        stillTrying.reset();
        authErrors.reset();
        return;
      case "error":
        describeError(s.error);
        return;
      case "staleConnection":
        logger.warn(`NATS at ${server} stopped answering pings; reconnecting`);
        return;
      case "ldm":
        logger.info(
          `NATS server ${hostPort(s.server)} is shutting down for maintenance; ` +
            `the connection will move to another server`,
        );
        return;
      case "forceReconnect":
        logger.info(`Reconnecting to NATS on request`);
        return;
      case "slowConsumer":
        logger.warn(`Falling behind on messages from NATS`, {
          subject: s.sub.getSubject(),
          pending: s.pending,
        });
        return;
      case "update":
        // Sent with empty lists on every reconnect to a single server; only changes matter.
        if (s.added?.length || s.deleted?.length) {
          logger.info(`NATS cluster membership changed`, {
            added: s.added?.join(","),
            deleted: s.deleted?.join(","),
          });
        }
        return;
      case "ping":
      case "close":
        // Pings are routine; the close is logged from `closed()` below with its reason.
        return;
    }
  };
  const describeError = (err: Error): void => {
    if (err instanceof PermissionViolationError) {
      logger.warn(
        `NATS refused permission to ${err.operation} on "${err.subject}"; ` +
          `this process's NATS user lacks that permission`,
        { credentials: credentials.describe() },
      );
    } else if (
      err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError
    ) {
      authErrors.count();
      if (authErrors.shouldLog(authErrors.total)) {
        logger.warn(
          `NATS at ${server} rejected our credentials (${credentials.describe()}): ` +
            `${err.message}; will keep retrying`,
          { times: authErrors.total },
        );
      }
    } else {
      logger.warn(`NATS at ${server} reported an error: ${err.message}`);
    }
  };
  (async () => {
    for await (const s of nc.status()) describe(s);
  })().catch((err: unknown) => {
    logger.error(`Stopped following the NATS connection status: ${errorMessage(err)}`);
  });
  nc.closed().then((err) => {
    if (err) {
      logger.error(
        `The connection to NATS at ${server} closed and will not come back: ${err.message}`,
      );
    } else {
      logger.info(`Closed the connection to NATS at ${server}`);
    }
  }, (err: unknown) => {
    logger.error(`The connection to NATS failed while closing: ${errorMessage(err)}`);
  });
}

/** Lets repeated lines through at counts 1, 2, 4, ..., 64 and after that once a minute. */
class Thinner {
  #lastLogAt = 0;
  #total = 0;

  get total(): number {
    return this.#total;
  }
  count(): void {
    this.#total++;
  }
  reset(): void {
    this.#lastLogAt = 0;
    this.#total = 0;
  }
  shouldLog(n: number): boolean {
    const now = Date.now();
    const powerOfTwo = n > 0 && n <= 64 && (n & (n - 1)) === 0;
    if (powerOfTwo || (n > 64 && now - this.#lastLogAt >= 60_000)) {
      this.#lastLogAt = now;
      return true;
    }
    return false;
  }
}

let guardInstalled = false;

/**
 * Keeps the process alive through the one stray error Deno's Node compatibility layer can
 * throw outside any promise when NATS drops a TCP connection that failed authentication:
 * an uncaught `ECONNRESET` (seen in ~30 of 50 tries here; the failed connect itself is
 * already reported to the caller). Everything else stays fatal. Installed once per process.
 */
export function installConnectionResetGuard(logger: Logger): void {
  if (guardInstalled) return;
  guardInstalled = true;
  const log = logger.with({ component: "nats" });
  globalThis.addEventListener("error", (event: ErrorEvent) => {
    if (!isConnectionReset(event.error)) return;
    event.preventDefault();
    log.debug("Ignored a connection reset from a NATS connection that was already closed", {
      error: errorMessage(event.error),
    });
  });
  globalThis.addEventListener("unhandledrejection", (event: PromiseRejectionEvent) => {
    if (!isConnectionReset(event.reason)) return;
    event.preventDefault();
    log.debug("Ignored a connection reset from a NATS connection that was already closed", {
      error: errorMessage(event.reason),
    });
  });
}

function isConnectionReset(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as Error & { code?: unknown }).code;
  return code === "ECONNRESET" || /\bECONNRESET\b/.test(err.message);
}

function authHint(err: unknown, credentials: CredentialSource): string {
  return err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError
    ? `; the server rejected ${credentials.describe()}`
    : "";
}

/** `nats://host:4222` or `host:4222` → `host:4222`. */
function hostPort(server: string): string {
  return server.replace(/^[a-z]+:\/\//i, "").replace(/^[^@/]*@/, "");
}

function secondsSince(start: number): string {
  return start === 0 ? "0" : ((Date.now() - start) / 1000).toFixed(1);
}

/** Waits `ms`, or less when `signal` aborts (then it resolves early, not rejects). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
