/**
 * The callout under load, all real parts: nats-server with the generated auth callout block,
 * `fleet callout run` as child processes (one, or two in the queue group), the real token
 * verifier against the test OpenID provider (its JWKS fetched once, then cached), and
 * agents connecting as the product does ({@link connectNats}), each with its own access token.
 */
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { silentLogger } from "../adapters/logger.ts";
import { connectNats, type CredentialSource } from "../adapters/nats/mod.ts";
import { deviceInboxPrefix } from "../core/permissions.ts";
import { calloutConfigFile, loadCalloutKeys } from "../callout/config.ts";
import { calloutServerConfig, serverSettings } from "../callout/nats_config.ts";
import { type NatsServer, startNatsServer } from "../sandbox/nats_server.ts";
import { startTestProvider, type TestProvider } from "../testing/oidc_provider.ts";
import { eventually } from "../testing/eventually.ts";
import { writeCalloutSecrets, writeCalloutToml } from "../testing/callout.ts";
import { type BenchChild, spawnLogged } from "./_child_process.ts";
import { percentile, say } from "./_figures.ts";
import { findPid, procSample } from "./_proc.ts";

const MAIN = join(import.meta.dirname ?? ".", "..", "main.ts");

/** One agent: its device id and access token. */
export interface Agent {
  deviceId: string;
  token: string;
}

/** A burst of connects: rate and client-side connect latency. */
export interface BurstFigures {
  perSecond: number;
  p50: number;
  p99: number;
  failed: number;
}

/** After a nats-server restart: time until every agent is back, and what was refused. */
export interface StormFigures {
  backMs: number;
  back: number;
  /** Authorization errors the agents saw (timeouts and refusals alike). */
  authErrors: number;
  /** Of those, the callouts' own refusals (the rest timed out in the server). */
  refused: number;
}

/** The server, the provider and the callout config, and the callouts' log lines. */
export class CalloutLoad implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #callouts: BenchChild[] = [];

  private constructor(
    readonly dir: string,
    readonly configPath: string,
    readonly idp: TestProvider,
    readonly ns: NatsServer,
  ) {}

  static async start(): Promise<CalloutLoad> {
    const dir = await Deno.makeTempDir({ prefix: "fleet-callout-bench-" });
    const idp = await startTestProvider();
    await writeCalloutSecrets(dir);
    const write = (port: number) =>
      writeCalloutToml(dir, {
        port,
        oidc: {
          issuer: idp.issuer,
          audience: idp.audience,
          device_id_claim: idp.deviceIdClaim,
          role_claim: "roles",
          roles: { "fleet-device": "device" },
        },
        jwt: { max_ttl_seconds: 600 },
      });
    const configPath = await write(4222);
    const config = await calloutConfigFile.load(configPath);
    const keys = await loadCalloutKeys(config, configPath);
    const ns = await startNatsServer({
      extraConfig: calloutServerConfig(serverSettings(config, keys)),
    });
    await write(ns.port);
    return new CalloutLoad(dir, configPath, idp, ns);
  }

  /** `count` agents with their own machine user and access token. */
  async agents(count: number): Promise<Agent[]> {
    const agents: Agent[] = [];
    for (let i = 0; i < count; i += 20) {
      agents.push(
        ...await Promise.all(
          Array.from({ length: Math.min(20, count - i) }, async (_, j) => {
            const deviceId = `bench-${i + j}`;
            const user = await this.idp.addMachineUser({ id: deviceId, roles: ["fleet-device"] });
            return { deviceId, token: await this.idp.mintToken(user) };
          }),
        ),
      );
    }
    return agents;
  }

  /** Starts one more `fleet callout run`, in the same queue group as those running. */
  async addCallout(): Promise<void> {
    const started = this.lines.filter((l) => l.includes("Answering NATS")).length;
    this.#callouts.push(
      spawnLogged(
        ["run", "-A", MAIN, "callout", "run", "--config", this.configPath],
        (line) => this.lines.push(line),
      ),
    );
    await eventually(
      "the callout answering",
      () => this.lines.filter((l) => l.includes("Answering NATS")).length > started,
      30_000,
    );
  }

  /**
   * CPU ticks (1/100 s) used so far by the callouts, this process (the agents and the
   * provider) and nats-server: where the time of a burst goes, on a machine they share.
   */
  cpuTicks(): { callouts: number; agents: number; server: number } {
    const ticks = (pid: number | "self" | undefined) =>
      pid === undefined ? 0 : procSample(pid)?.cpuTicks ?? 0;
    return {
      callouts: this.#callouts.reduce((sum, c) => sum + ticks(c.child.pid), 0),
      agents: ticks("self"),
      server: ticks(findPid("nats-server", this.ns.storeDir)),
    };
  }

  /** Allowed and refused decisions logged so far by all callouts. */
  decisions(): { allowed: number; refused: number; handlingMs: number[] } {
    const allowed = this.lines.filter((l) => l.includes("Allowed device"));
    return {
      allowed: allowed.length,
      refused: this.lines.filter((l) => l.includes("Refused a NATS connection")).length,
      handlingMs: allowed.map((l) => Number(/ms=([\d.]+)/.exec(l)?.[1])).filter(Number.isFinite),
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#callouts.map((c) => c.stop()));
    await this.ns[Symbol.asyncDispose]();
    await this.idp[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** The agent's credentials: its token, on its own inbox prefix (as the agent connects). */
function tokenCredentials(agent: Agent): CredentialSource {
  return {
    kind: "bench-token",
    bearer: true,
    connectionOptions: () =>
      Promise.resolve({ token: agent.token, inboxPrefix: deviceInboxPrefix(agent.deviceId) }),
    describe: () => `the access token of ${agent.deviceId}`,
  };
}

/** Connects `agent` as the product does (reconnecting forever, through auth errors too). */
export function connectAgent(url: string, agent: Agent): Promise<NatsConnection> {
  return connectNats({
    servers: [url],
    credentials: tokenCredentials(agent),
    name: agent.deviceId,
    logger: silentLogger,
    waitOnFirstConnect: false,
  });
}

/**
 * Connects every agent, `concurrency` at a time (closed loop: the callouts' capacity); returns
 * the rate and latencies and the open connections (the caller closes them). At capacity the
 * latency is mostly waiting in line: see {@link paced} for the latency under a given load.
 */
export async function burst(
  url: string,
  agents: Agent[],
  concurrency: number,
): Promise<{ figures: BurstFigures; conns: NatsConnection[] }> {
  const run = new ConnectRun((agent) => connectAgent(url, agent));
  await closedLoop(run, agents, concurrency);
  return run.done();
}

/** Connects every agent through `run`, `concurrency` at a time. */
async function closedLoop<C>(run: ConnectRun<C>, agents: Agent[], concurrency: number) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < agents.length) await run.connect(agents[next++]!);
  }));
}

/**
 * {@link burst} with bare-protocol clients ({@link rawConnect}) instead of the product's: the
 * load generator's own CPU then leaves the 2 cores to nats-server and the callouts. Closes the
 * connections before it returns.
 */
export async function rawBurst(
  url: string,
  agents: Agent[],
  concurrency: number,
): Promise<BurstFigures> {
  const run = new ConnectRun((agent) => rawConnect(url, agent));
  await closedLoop(run, agents, concurrency);
  const { figures, conns } = run.done();
  for (const conn of conns) conn.close();
  return figures;
}

/**
 * Connects `agent` with the bare NATS client protocol: INFO in, CONNECT with its token and
 * PING out, PONG in once the callout has allowed it (`-ERR` when refused).
 */
async function rawConnect(url: string, agent: Agent): Promise<Deno.TcpConn> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const lines = protocolLines(conn);
    const info = await lines.next();
    if (info.done || !info.value.startsWith("INFO ")) throw new Error(`no INFO: ${info.value}`);
    const connect = {
      verbose: false,
      pedantic: false,
      protocol: 1,
      headers: true,
      no_responders: true,
      name: agent.deviceId,
      auth_token: agent.token,
    };
    await conn.write(new TextEncoder().encode(`CONNECT ${JSON.stringify(connect)}\r\nPING\r\n`));
    for await (const line of lines) {
      if (line === "PONG") return conn;
      if (line.startsWith("-ERR")) throw new Error(line);
    }
    throw new Error("closed before PONG");
  } catch (err) {
    conn.close();
    throw err;
  }
}

/** The protocol lines the server sends on `conn`, until it closes. */
async function* protocolLines(conn: Deno.TcpConn): AsyncGenerator<string, void> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let pending = "";
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return;
    pending += decoder.decode(buffer.subarray(0, n), { stream: true });
    let end: number;
    while ((end = pending.indexOf("\r\n")) >= 0) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 2);
    }
  }
}

/**
 * Connects the agents at a steady `perSecond` (open loop: each starts on schedule, whether or
 * not the earlier ones are done), as agents arrive in the field: the latency at that load.
 */
export async function paced(
  url: string,
  agents: Agent[],
  perSecond: number,
): Promise<{ figures: BurstFigures; conns: NatsConnection[] }> {
  const run = new ConnectRun((agent) => connectAgent(url, agent));
  await Promise.all(agents.map(async (agent, i) => {
    const wait = run.started + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await run.connect(agent);
  }));
  return run.done();
}

/** Connect latencies and failures of one run, and its open connections. */
class ConnectRun<C> {
  readonly started = performance.now();
  readonly #times: number[] = [];
  readonly #conns: C[] = [];
  #failed = 0;

  constructor(readonly open: (agent: Agent) => Promise<C>) {}

  async connect(agent: Agent): Promise<void> {
    const t0 = performance.now();
    try {
      this.#conns.push(await this.open(agent));
      this.#times.push(performance.now() - t0);
    } catch {
      this.#failed++;
    }
  }

  done(): { figures: BurstFigures; conns: C[] } {
    const elapsed = performance.now() - this.started;
    const times = [...this.#times].sort((a, b) => a - b);
    return {
      figures: {
        perSecond: times.length / (elapsed / 1000),
        p50: percentile(times, 0.5),
        p99: percentile(times, 0.99),
        failed: this.#failed,
      },
      conns: this.#conns,
    };
  }
}

/** Every agent connected, then nats-server restarted: how long until all are back. */
export async function storm(load: CalloutLoad, agents: Agent[]): Promise<StormFigures> {
  const { conns } = await burst(load.ns.url, agents, 50);
  say(`storm: ${conns.length} agents connected; restarting nats-server`);
  const back = new Set<number>();
  let authErrors = 0;
  conns.forEach((nc, i) => {
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === "reconnect") back.add(i);
        if (s.type === "error" && /authoriz/i.test(String(s.error))) authErrors++;
      }
    })();
  });
  const refusedBefore = load.decisions().refused;
  const restarted = performance.now();
  await load.ns.restart();
  await eventually(`all ${conns.length} agents back`, () => back.size === conns.length, 120_000)
    .catch(() => undefined);
  const backMs = performance.now() - restarted;
  await Promise.all(conns.map((nc) => nc.close()));
  return {
    backMs,
    back: back.size,
    authErrors,
    refused: load.decisions().refused - refusedBefore,
  };
}
