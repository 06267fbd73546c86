/**
 * How long a real `fleet agent run` takes to reach NATS over `wss://` through an edge-TLS proxy
 * (HAProxy in front of nats-server's WebSocket listener, as an OpenShift Route), against the
 * same over plain TCP, both with the auth callout checking OIDC tokens: from the process start
 * and from its "starting" line to "Connected to NATS", and to its first report (the device-info
 * key) seen by the control plane. Each run is a new device. Then, over each transport, the
 * idle memory of an agent as the package runs it (no deployments), once it has given back what
 * its start-up needed. Prints one line of figures, last.
 *
 * `deno task bench:wss [--runs 5]`
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { Kvm } from "@nats-io/kv";
import { Buckets, keys } from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { connectNats } from "../adapters/nats/mod.ts";
import { createTokenSource, oidcCredentials, principalInbox } from "../adapters/oidc/mod.ts";
import { sleep, waitFor } from "../adapters/timers.ts";
import { createOperator } from "../operator/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { type MachineUser, startTestProvider } from "../testing/oidc_provider.ts";
import { startEdgeNats, writeAgentConfig } from "../testing/edge_nats.ts";
import { spawnLogged } from "./_child_process.ts";
import { type ProcSample, runningSample } from "./_proc.ts";
import { type BenchProgram, memoryFigures, packagedAgent } from "./_packaged_agent.ts";
import { MEMORY_SETTLE_MS } from "../agent/memory_keeper.ts";
import { fmt, median, say } from "./_figures.ts";
import { printLine } from "../adapters/output.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "5" } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer`);
const log = createLogger({ level: "error" });
const STEP_MS = 60_000;
/** How long after the agent gave back its start-up's memory its idle memory is read. */
const IDLE_AFTER_MS = 15_000;

type Transport = "tcp" | "wss";
interface Run {
  /** Process start → "Connected to NATS" read from its log. */
  connected: number;
  /** The agent's own "starting" line → its "Connected to NATS" line (their timestamps). */
  connectedAfterStart: number;
  /** Process start → its device-info key seen on the control plane's connection. */
  reported: number;
}

const dir = await Deno.makeTempDir({ prefix: "fleet-bench-wss-" });
await using idp = await startTestProvider({ accessTokenTtlSeconds: 600 });
await using edge = await startEdgeNats(dir, idp, log);
await using podman = await startPodmanService();
const operatorUser = await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] });
const nc = await connectNats({
  servers: [edge.ns.url],
  credentials: oidcCredentials(
    createTokenSource({
      issuer: idp.issuer,
      clientId: operatorUser.clientId,
      privateKeyJwk: operatorUser.privateKeyJwk,
      grant: "jwt-bearer",
      audience: idp.audience,
      logger: log,
    }),
    { logger: log, inboxPrefix: principalInbox },
  ),
  name: "fleet-operator",
  logger: log,
});
const controller = new AbortController();
const operator = createOperator({ nc, log, replicas: 1, allowUnboundNamespaces: true });
const operatorDone = operator.run(controller.signal);
await operator.ready;
const reportedAt = new Map<string, number>();
const info = await new Kvm(nc).open(Buckets.deviceInfo, { bindOnly: true });
const watch = await info.watch({ include: "updates" });
void (async () => {
  for await (const entry of watch) {
    if (!reportedAt.has(entry.key)) reportedAt.set(entry.key, performance.now());
  }
})();

/** The time of a log line (`2026-…Z INFO …`), in ms since the epoch. */
function timeOf(line: string): number {
  return Date.parse(line.slice(0, line.indexOf(" ")));
}

/** A new device's machine user and agent config for `transport`; the config's path. */
async function deviceConfig(transport: Transport, deviceId: string): Promise<string> {
  const user: MachineUser = await idp.addMachineUser({ id: deviceId, roles: ["device"] });
  return await writeAgentConfig(dir, {
    deviceId,
    ...(transport === "wss"
      ? { urls: [edge.proxy.url], caFile: edge.certs.caFile }
      : { urls: [edge.ns.url] }),
    idp,
    user,
    podmanSocket: podman.socketPath,
  });
}

/**
 * The idle memory of a packaged agent over `transport`, IDLE_AFTER_MS after it gave back what
 * its start-up needed.
 */
async function idleMemory(program: BenchProgram, transport: Transport): Promise<ProcSample> {
  const deviceId = `${transport}-idle`;
  const config = await deviceConfig(transport, deviceId);
  const started = performance.now();
  const agent = spawnLogged(
    [...program.args, "agent", "run", "--config", config],
    () => {},
    program.env,
  );
  try {
    const key = keys.deviceInfo(deviceId);
    await waitFor(`${deviceId} to report`, () => reportedAt.get(key), STEP_MS, 5);
    await sleep(started + MEMORY_SETTLE_MS + IDLE_AFTER_MS - performance.now());
    return runningSample(agent.child.pid, `${deviceId}'s agent`);
  } finally {
    await agent.stop();
  }
}

async function measure(transport: Transport, n: number): Promise<Run> {
  const deviceId = `${transport}-${n}`;
  const config = await deviceConfig(transport, deviceId);
  const lines: string[] = [];
  let connectedAt: number | undefined;
  const started = performance.now();
  const agent = spawnLogged(
    ["run", "-A", MAIN, "agent", "run", "--config", config, "--log-level", "info"],
    (line) => {
      lines.push(line);
      if (connectedAt === undefined && line.includes("Connected to NATS at")) {
        connectedAt = performance.now();
      }
    },
    { NO_COLOR: "1" },
  );
  try {
    const key = keys.deviceInfo(deviceId);
    const reported = await waitFor(`${deviceId} to report`, () => reportedAt.get(key), STEP_MS, 5);
    const connected = await waitFor(`${deviceId} to connect`, () => connectedAt, STEP_MS, 5);
    const starting = lines.find((l) => l.includes("Fleet agent") && l.includes("starting"));
    const connectedLine = lines.find((l) => l.includes("Connected to NATS at"));
    if (starting === undefined || connectedLine === undefined) {
      throw new Error(`${deviceId} logged no start or connect line:\n${lines.join("\n")}`);
    }
    return {
      connected: connected - started,
      connectedAfterStart: timeOf(connectedLine) - timeOf(starting),
      reported: reported - started,
    };
  } finally {
    await agent.stop();
  }
}

const results: Record<Transport, Run[]> = { tcp: [], wss: [] };
const idle: Partial<Record<Transport, ProcSample>> = {};
try {
  for (let n = 1; n <= runs; n++) {
    for (const transport of ["tcp", "wss"] as const) {
      const run = await measure(transport, n);
      results[transport].push(run);
      say(
        `${transport} run ${n}: connected ${fmt(run.connected)} ms after spawn ` +
          `(${fmt(run.connectedAfterStart)} ms after "starting"), reported ${fmt(run.reported)} ms`,
      );
    }
  }
  const packaged = await packagedAgent(dir, {
    stateDir: dir,
    podmanSocketDir: dirname(podman.socketPath),
  });
  for (const transport of ["tcp", "wss"] as const) {
    idle[transport] = await idleMemory(packaged, transport);
    say(`${transport} idle, as packaged: ${memoryFigures(idle[transport])}`);
  }
} finally {
  watch.stop();
  controller.abort();
  await operatorDone;
  await nc.close();
  await Deno.remove(dir, { recursive: true });
}

const figures = (transport: Transport) => {
  const r = results[transport];
  return `start→connected p50=${fmt(median(r.map((x) => x.connected)))}ms ` +
    `("starting"→connected p50=${fmt(median(r.map((x) => x.connectedAfterStart)))}ms) ` +
    `start→first report p50=${fmt(median(r.map((x) => x.reported)))}ms`;
};
printLine(
  `wss bench (agent process, auth callout + OIDC, ${runs} runs each): wss:// through HAProxy ` +
    `edge TLS: ${figures("wss")}; tcp:// direct: ${figures("tcp")}; idle as packaged, no ` +
    `deployments: wss:// ${memoryFigures(idle.wss!)}, tcp:// ${memoryFigures(idle.tcp!)}`,
);
