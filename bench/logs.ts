/**
 * Logs throughput from one device (issue 14, item 5): a container in a real podman prints
 * `--mb` megabytes; the agent's own logs session (LogSessions over PodmanRuntime, publishing on
 * a real nats-server) streams them to the CLI's session client, which grants credit as it
 * consumes, as `fleet logs` does. Measured: MB/s end to end, and the agent side's resident
 * memory. Prints one line of figures, last.
 *
 * `deno task bench:logs [--mb 50]`
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { ContainerLabels, LogsRequest, MANAGED_BY, MIN_CREDIT, newSessionId } from "../core/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import { silentLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { SessionClient } from "../adapters/nats/session_client.ts";
import { LogSessions } from "../agent/log_sessions.ts";
import { natsSessionTransport } from "../agent/session.ts";
import { PodmanRuntime } from "../agent/podman_runtime.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { fmt, say } from "./_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mb: { type: "string", default: "50" } },
});
const mb = Number(values.mb);
if (!Number.isInteger(mb) || mb < 1) throw new Error("--mb must be a positive integer");
/** Lines of 1 KiB with the newline. */
const lines = mb * 1024;

await using ns = await startNatsServer();
await using service = await startPodmanService();
using podman = new PodmanClient({ socketPath: service.socketPath });
const image = await ensureTestImage(podman, "v1");
const deviceId = "bench-logs";
const id = await podman.createContainer({
  name: `fleet_${deviceId}_default_chatty_talk`,
  image,
  labels: {
    [ContainerLabels.managedBy]: MANAGED_BY,
    [ContainerLabels.deviceId]: deviceId,
    [ContainerLabels.namespace]: "default",
    [ContainerLabels.deployment]: "chatty",
    [ContainerLabels.service]: "talk",
  },
  env: {},
  ports: [],
  volumes: [],
  restartPolicy: "no",
  command: [
    "/bin/sh",
    "-c",
    `i=0; while [ $i -lt ${lines} ]; do printf '%06d %01016d\\n' $i 0; i=$((i+1)); done`,
  ],
});
try {
  await podman.startContainer(id);
  say(`a container printing ${mb} MB`);
  while ((await podman.inspectContainer(id))?.state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const agentNc = await connect({ servers: ns.url });
  const cliNc = await connect({ servers: ns.url });
  const sessions = new LogSessions({
    deviceId,
    transport: natsSessionTransport(agentNc, silentLogger),
    clock: systemClock,
    log: silentLogger,
    audit: () => Promise.resolve(),
    runtime: new PodmanRuntime(podman),
    journal: () => Promise.reject(new Error("no journal in the bench")),
  });
  const window = 16 * MIN_CREDIT;
  const sessionId = newSessionId();
  const client = new SessionClient(cliNc, {
    deviceId,
    principal: "bench",
    sessionId,
    window,
    clock: systemClock,
  });
  await cliNc.flush();
  let rss = Deno.memoryUsage().rss;
  const sampling = setInterval(() => rss = Math.max(rss, Deno.memoryUsage().rss), 50);
  const started = performance.now();
  await sessions.open(
    LogsRequest.parse({
      requestId: "bench",
      sessionId,
      namespace: "default",
      deployment: "chatty",
      credit: window,
    }),
    "bench",
  );
  let bytes = 0;
  let reason = "";
  for await (const event of client.events()) {
    if ("data" in event) {
      bytes += event.data.length;
      client.consumed(event.data.length);
    } else {
      reason = event.end.reason;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampling);
  await agentNc.close();
  await cliNc.close();
  if (reason !== "done" || bytes !== lines * 1024) {
    throw new Error(`the session ended ${reason} after ${bytes} of ${lines * 1024} bytes`);
  }
  printLine(
    `logs mb=${mb} seconds=${fmt(seconds, 2)} throughput=${fmt(bytes / 1e6 / seconds, 1)}MB/s ` +
      `window=${window} max_rss=${fmt(rss / 1e6)}MB (agent and reader in one process)`,
  );
} finally {
  await podman.removeContainer(id);
}
