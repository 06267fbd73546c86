/**
 * Agent idle footprint: a real `fleet agent run` process with N deployments, measured after
 * it settles. Prints one line of figures. `deno task bench:agent-idle [deployments]`
 */
import { fileURLToPath } from "node:url";
import { createLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { connectNats, noCredentials, startNatsServer } from "../adapters/nats/mod.ts";
import { ensureTestImage, PodmanClient, startPodmanService } from "../adapters/podman/mod.ts";
import { NatsDeploymentSource, NatsDeploymentStore, Operator } from "../operator/mod.ts";
import { ContainerLabels, MANAGED_BY } from "../core/mod.ts";
import { waitFor } from "../sandbox/local_fleet.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const deployments = Number(Deno.args[0] ?? 10);
const settleSeconds = Number(Deno.args[1] ?? 20);
const log = createLogger({ level: "error" });

function procStat(pid: number): { rssKb: number; cpuTicks: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return { rssKb, cpuTicks: Number(stat[11]) + Number(stat[12]) };
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
const operator = new Operator({
  nc,
  source: new NatsDeploymentSource(nc, log, 1),
  log,
  replicas: 1,
});
const operatorDone = operator.run(controller.signal);
await operator.ready;
const dir = await Deno.makeTempDir({ prefix: "fleet-bench-agent-" });
await Deno.writeTextFile(
  `${dir}/agent.toml`,
  `device_id = "bench-1"\nstate_dir = "${dir}/state"\nlabels = { site = "bench" }\n` +
    `[nats]\nurls = ["${nats.url}"]\n[podman]\nsocket = "${podman.socketPath}"\n`,
);
const agent = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", MAIN, "agent", "run", "--config", `${dir}/agent.toml`, "--log-level", "warn"],
  stdout: "null",
  stderr: "inherit",
}).spawn();
const store = new NatsDeploymentStore(nc, log);
const started = performance.now();
for (let i = 0; i < deployments; i++) {
  await store.apply(singleServiceDeployment({
    name: `idle-${i}`,
    namespace: "bench",
    image,
    selector: { matchLabels: { site: "bench" } },
  }));
}
const managed = () =>
  client.listContainers({
    [ContainerLabels.managedBy]: MANAGED_BY,
    [ContainerLabels.deviceId]: "bench-1",
  });
try {
  await waitFor(`${deployments} containers running`, async () => {
    const cs = await managed();
    return cs.filter((c) => c.state === "running").length === deployments || undefined;
  }, 120_000);
  const convergedS = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, settleSeconds * 1000));
  const a = procStat(agent.pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 60_000));
  const b = procStat(agent.pid);
  const ticksPerSecond = 100;
  const cpuPercent = ((b.cpuTicks - a.cpuTicks) / ticksPerSecond) /
    ((performance.now() - t0) / 1000) * 100;
  printLine(
    `agent idle: deployments=${deployments} converged_s=${convergedS.toFixed(2)} rss_mb=${
      (b.rssKb / 1024).toFixed(1)
    } cpu_percent_of_core=${
      cpuPercent.toFixed(2)
    } (measured over 60 s after ${settleSeconds} s settle)`,
  );
} finally {
  agent.kill("SIGTERM");
  await agent.status;
  for (const c of await managed()) await client.removeContainer(c.id);
  controller.abort();
  await operatorDone;
  await nc.close();
  await Deno.remove(dir, { recursive: true });
}
