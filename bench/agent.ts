/**
 * Agent figures with a real `fleet agent run` process, podman and nats-server:
 * apply → container running latency over N deployments (p50/p99), idle resident memory and
 * CPU with K deployments, and an agent restart that must confirm K unchanged deployments
 * without recreating any. Beside the agent's memory it measures the runtime's floor: the same
 * runtime, flags and V8 flags running a program that only holds a TCP connection to the same
 * NATS server and, like the agent, gives back its start-up's code pages
 * (adapters/code_pages.ts). Prints one line of figures, last.
 *
 * The agent runs as the package runs it (`--program package`, the default): the bundle split
 * at main.ts's dynamic imports, the unit's flags, Deno permissions, environment and warm-up;
 * `--program source` runs `deno run -A main.ts` instead.
 *
 * `deno task bench:agent [--deployments 20] [--idle 10] [--idle-seconds 60] [--program package]`
 */
import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { ContainerLabels, MANAGED_BY } from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { NatsDeviceLabelStore } from "../cli/device_labels.ts";
import { createOperator } from "../operator/mod.ts";
import { sleep, waitFor } from "../adapters/timers.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { cpuPercent, type ProcSample, runningSample } from "./_proc.ts";
import { percentile } from "./_figures.ts";
import { spawnLogged } from "./_child_process.ts";
import { MEMORY_SETTLE_MS } from "../agent/memory_keeper.ts";
import { memoryFigures, packagedAgent, SOURCE_PROGRAM } from "./_packaged_agent.ts";

const CODE_PAGES = new URL("../adapters/code_pages.ts", import.meta.url).href;
const { values } = parseArgs({
  args: Deno.args,
  options: {
    deployments: { type: "string", default: "20" },
    idle: { type: "string", default: "10" },
    "idle-seconds": { type: "string", default: "60" },
    program: { type: "string", default: "package" },
  },
});
if (values.program !== "package" && values.program !== "source") {
  throw new Error(`--program must be "package" or "source", got "${values.program}"`);
}
const total = Number(values.deployments);
const idleCount = Math.min(Number(values.idle), total);
const idleSeconds = Number(values["idle-seconds"]);
const log = createLogger({ level: "error" });
const DEVICE = "bench-1";

/** The idle memory of the runtime's floor (see the module's comment), settled as the agent's. */
async function floorSample(dir: string, natsUrl: string): Promise<ProcSample> {
  const { hostname, port } = new URL(natsUrl);
  const file = `${dir}/floor.js`;
  await Deno.writeTextFile(
    file,
    `import { releaseCodePages } from ${JSON.stringify(CODE_PAGES)};\n` +
      `const conn = await Deno.connect(${JSON.stringify({ hostname, port: Number(port) })});\n` +
      `await conn.read(new Uint8Array(4096));\n` +
      `releaseCodePages();\n` +
      `console.error("connected");\n` +
      `setInterval(() => {}, 1 << 30);\n`,
  );
  const lines: string[] = [];
  const floor = spawnLogged(
    [...program.args.slice(0, -1), file],
    (line) => lines.push(line),
    program.env,
  );
  try {
    await waitFor("the floor program to connect", () => lines.includes("connected") || undefined);
    await sleep(15_000); // settle, as the agent did
    return runningSample(floor.child.pid, "the floor program");
  } finally {
    await floor.stop();
  }
}

/** A `fleet agent run` child whose stderr lines are kept. */
function startAgent(config: string) {
  const lines: string[] = [];
  const args = [...program.args, "agent", "run", "--config", config, "--log-level", "info"];
  return { ...spawnLogged(args, (line) => lines.push(line), program.env), lines };
}

await using nats = await startNatsServer();
await using podman = await startPodmanService();
using client = new PodmanClient({ socketPath: podman.socketPath });
const image = await ensureTestImage(client, "v1");
const nc = await connectNats({
  servers: [nats.url],
  credentials: noCredentials(),
  name: "bench",
  logger: log,
});
const controller = new AbortController();
const operator = createOperator({ nc, log, replicas: 1, allowUnboundNamespaces: true });
const operatorDone = operator.run(controller.signal);
await operator.ready;
const dir = await Deno.makeTempDir({ prefix: "fleet-bench-agent-" });
const config = `${dir}/agent.toml`;
await Deno.writeTextFile(
  config,
  `device_id = "${DEVICE}"\nstate_dir = "${dir}/state"\nlabels = { site = "bench" }\n` +
    `[nats]\nurls = ["${nats.url}"]\n[podman]\nsocket = "${podman.socketPath}"\n`,
);
const managed = () =>
  client.listContainers({
    [ContainerLabels.managedBy]: MANAGED_BY,
    [ContainerLabels.deviceId]: DEVICE,
  });
const store = new NatsDeploymentStore(nc, log);
// Deployments select on the registry's labels, as device enroll would have set them.
await new NatsDeviceLabelStore(nc).edit(DEVICE, () => ({ site: "bench" }));
const deployment = (i: number) =>
  singleServiceDeployment({
    name: `bench-${i}`,
    namespace: "bench",
    image,
    selector: { matchLabels: { site: "bench" } },
  });

const program = values.program === "source" ? SOURCE_PROGRAM : await packagedAgent(dir, {
  stateDir: `${dir}/state`,
  podmanSocketDir: dirname(podman.socketPath),
});
const agentStarted = performance.now();
let agent = startAgent(config);
try {
  await waitFor(
    "the agent to register",
    async () => (await store.devices()).length === 1 || undefined,
  );
  // Its desired-state consumer is created once it has registered; until the agent has read it
  // (it retries after 1 s), a deployment would wait for its start, not for a reconcile.
  await waitFor(
    "the agent to read its desired state",
    () => agent.lines.some((l) => l.includes("Read the desired state from NATS")) || undefined,
  );

  // 1. apply → running, one deployment at a time.
  const latencies: number[] = [];
  for (let i = 0; i < total; i++) {
    const started = performance.now();
    await store.apply(deployment(i));
    await waitFor(
      `bench-${i} running`,
      async () => {
        const cs = await managed();
        return cs.some((c) =>
          c.labels[ContainerLabels.deployment] === `bench-${i}` && c.state === "running"
        ) ||
          undefined;
      },
      60_000,
      20,
    );
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);

  // 2. Idle with `idleCount` deployments.
  for (let i = idleCount; i < total; i++) {
    await store.delete({ namespace: "bench", name: `bench-${i}` });
  }
  await waitFor(
    "the extra containers gone",
    async () => (await managed()).length === idleCount || undefined,
    60_000,
  );
  // Settle, and past the moment the agent gives back what its start-up needed.
  await sleep(Math.max(15_000, agentStarted + MEMORY_SETTLE_MS + 5_000 - performance.now()));
  const a = runningSample(agent.child.pid, "the agent");
  const t0 = performance.now();
  await sleep(idleSeconds * 1000);
  const b = runningSample(agent.child.pid, "the agent");
  const idleCpu = cpuPercent(a, b, performance.now() - t0);

  // 3. Restart: confirm every deployment, recreate none.
  const before = new Map((await managed()).map((c) => [c.name, c.id]));
  await agent.stop();
  const restartedAt = performance.now();
  agent = startAgent(config);
  const confirmedMs = await waitFor(
    "the restarted agent's first pass",
    () => {
      const read = agent.lines.some((l) =>
        l.includes(`Read the desired state from NATS: ${idleCount} deployment`)
      );
      const running = agent.lines.filter((l) => / is running /.test(l)).length >= idleCount;
      return read && running ? performance.now() - restartedAt : undefined;
    },
    60_000,
    20,
  );
  const after = new Map((await managed()).map((c) => [c.name, c.id]));
  const recreated = [...before].filter(([name, id]) => after.get(name) !== id).length;
  const creates = agent.lines.filter((l) => l.includes("Creating container")).length;
  const floor = await floorSample(dir, nats.url);

  printLine(
    `agent bench: apply→running p50=${percentile(latencies, 0.5).toFixed(0)}ms p99=${
      percentile(latencies, 0.99).toFixed(0)
    }ms over ${total} deployments; program=${values.program}; idle with ${idleCount}: ${
      memoryFigures(b)
    } cpu=${
      idleCpu.toFixed(2)
    }% of a core over ${idleSeconds}s; restart confirmed ${idleCount} unchanged in ${
      (confirmedMs / 1000).toFixed(2)
    }s, recreated=${recreated}, creates=${creates}; runtime floor: ${memoryFigures(floor)}`,
  );
} finally {
  await agent.stop();
  for (const c of await managed()) await client.removeContainer(c.id);
  controller.abort();
  await operatorDone;
  await nc.close();
  await Deno.remove(dir, { recursive: true });
}
