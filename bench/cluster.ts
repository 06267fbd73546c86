/**
 * The control plane as its chart installs it on a real single-node cluster
 * (testing/cluster_control_plane.ts): `helm install` → every pod Ready; a real
 * `fleet agent run`'s connect time over wss:// through the route stand-in (HAProxy edge TLS in
 * front of the NATS Service), from its spawn to "Connected to NATS", each run a new device;
 * authorizations per second through the chart's two callouts, agents with their own tokens
 * from the test provider connecting through the route (at capacity, `--concurrency` in
 * flight, and at a steady `--rate`), with p50/p99 connect latency; and the node's memory.
 * Prints one line of figures, last.
 *
 * `deno task bench:cluster [--runs 3] [--agents 300] [--concurrency 50] [--rate 100]` (as
 * root: the node's kubelet and containerd need it). It runs itself again with `DENO_CERT`
 * naming a test CA that signs the provider's and the route's certificates, so that its own
 * token requests and connections trust both, as the pods and devices do.
 */
import { parseArgs } from "node:util";
import type { NatsConnection } from "@nats-io/nats-core";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { printLine } from "../adapters/output.ts";
import { waitFor } from "../adapters/timers.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { CONTROL_PLANE_PODS, startClusterControlPlane } from "../testing/cluster_control_plane.ts";
import { writeAgentConfig } from "../testing/edge_nats.ts";
import { makeTestCertificates } from "../testing/tls.ts";
import { type Agent, burst, type BurstFigures, paced } from "./_callout_load.ts";
import { spawnLogged } from "./_child_process.ts";
import { fmt, median, say } from "./_figures.ts";

/** Set in the second run: the folder of the CA that `DENO_CERT` names. */
const CA_DIR_ENV = "FLEET_BENCH_CLUSTER_CA_DIR";
const CA_NAME = "bench-cluster";
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const STEP_MS = 120_000;

const caDir = Deno.env.get(CA_DIR_ENV);
if (caDir === undefined) {
  const dir = await Deno.makeTempDir({ prefix: "fleet-bench-cluster-ca-" });
  let code = 1;
  try {
    const ca = await makeTestCertificates(dir, CA_NAME, ["IP:127.0.0.1"]);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fileURLToPath(import.meta.url), ...Deno.args],
      env: { DENO_CERT: ca.caFile, [CA_DIR_ENV]: dir },
      stdin: "null",
    }).spawn();
    code = (await child.status).code;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  Deno.exit(code);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    agents: { type: "string", default: "300" },
    concurrency: { type: "string", default: "50" },
    rate: { type: "string", default: "100" },
  },
});
const runs = Number(values.runs);
const agentCount = Number(values.agents);
const concurrency = Number(values.concurrency);
const rate = Number(values.rate);

const dir = await Deno.makeTempDir({ prefix: "fleet-bench-cluster-" });
try {
  await using podmanService = await startPodmanService();
  using podman = new PodmanClient({ socketPath: podmanService.socketPath });
  say("building the images, starting the node, helm install");
  await using plane = await startClusterControlPlane(dir, podman, {
    ca: { caFile: join(caDir, `${CA_NAME}-ca.pem`), caKeyFile: join(caDir, `${CA_NAME}-ca.key`) },
  });
  const { idp, route } = plane;
  say(`helm install → every pod Ready in ${fmt(plane.installMs / 1000, 1)} s`);

  /** A new device's agent: spawn → "Connected to NATS" through the route, in ms. */
  const agentConnectMs = async (n: number): Promise<number> => {
    const deviceId = `wss-${n}`;
    const user = await idp.addMachineUser({ id: deviceId, roles: ["device"], deviceId });
    const config = await writeAgentConfig(dir, {
      deviceId,
      urls: [route.url],
      caFile: plane.routeCaFile,
      idp,
      user,
      podmanSocket: podmanService.socketPath,
    });
    let connectedAt: number | undefined;
    const started = performance.now();
    const agent = spawnLogged(
      ["run", "-A", MAIN, "agent", "run", "--config", config],
      (line) => {
        if (connectedAt === undefined && line.includes("Connected to NATS at")) {
          connectedAt = performance.now();
        }
      },
      { NO_COLOR: "1" },
    );
    try {
      return await waitFor(`${deviceId} to connect`, () => connectedAt, STEP_MS, 5) - started;
    } finally {
      await agent.stop();
    }
  };
  const connects: number[] = [];
  for (let n = 1; n <= runs; n++) {
    connects.push(await agentConnectMs(n));
    say(`agent ${n}: connected over wss:// through the route ${fmt(connects.at(-1)!)} ms`);
  }

  say(`minting ${agentCount} access tokens`);
  const agents: Agent[] = [];
  for (let i = 0; i < agentCount; i++) {
    const deviceId = `load-${i}`;
    const user = await idp.addMachineUser({ id: deviceId, roles: ["device"], deviceId });
    agents.push({ deviceId, token: await idp.mintToken(user) });
  }
  const load = async (
    label: string,
    run: Promise<{ figures: BurstFigures; conns: NatsConnection[] }>,
  ) => {
    const { figures, conns } = await run;
    // One at a time: of more than 128 wss:// connections closed at once in one Deno process,
    // those beyond the 128th never finish closing.
    for (const nc of conns) await nc.close();
    say(`${label}: ${line(figures)}`);
    return figures;
  };
  const line = (b: BurstFigures) =>
    `${fmt(b.perSecond)}/s p50=${fmt(b.p50, 1)}ms p99=${fmt(b.p99, 1)}ms` +
    (b.failed > 0 ? ` failed=${b.failed}` : "");
  await load("warm-up", burst(route.url, agents.slice(0, 1), 1));
  const capacity = await load("at capacity", burst(route.url, agents, concurrency));
  const steady = await load("steady", paced(route.url, agents, rate));
  const memory = Object.entries(await plane.node.memory())
    .map(([name, bytes]) => `${name} ${fmt(bytes / 2 ** 20)}`).join(", ");

  printLine(
    `cluster bench: helm install → ${CONTROL_PLANE_PODS} pods Ready ${
      fmt(plane.installMs / 1000, 1)
    } s; ` +
      `agent spawn → connected over wss:// through the route p50=${fmt(median(connects))} ms ` +
      `(${runs} runs); callout authorizations through the chart's 2 callouts over the route, ` +
      `${agentCount} agents: at capacity (${concurrency} in flight) ${line(capacity)}, ` +
      `at a steady ${rate}/s ${line(steady)}; node RSS MiB: ${memory}`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
