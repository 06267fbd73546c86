/**
 * Logs throughput from one device (issue 14, item 5): a container in a real podman prints
 * `--mb` megabytes; the agent's own logs session (LogSessions over PodmanRuntime, publishing on
 * a real nats-server) streams them to the CLI's session client, which grants credit as it
 * consumes, as `fleet logs` does. The agent's side runs in a process of its own
 * (bench/_logs_agent.ts), so its resident memory (idle, and the peak while streaming) is
 * measured apart from the reader's. Measured: MB/s end to end, and each side's peak RSS.
 * Prints one line of figures, last.
 *
 * `deno task bench:logs [--mb 50]`
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { ContainerLabels, MANAGED_BY, MIN_CREDIT, newSessionId } from "../core/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import { printLine } from "../adapters/output.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { SessionClient } from "../adapters/nats/session_client.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { fmt, say } from "./_figures.ts";
import { PeakRss, procSample } from "./_proc.ts";

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

  const cliNc = await connect({ servers: ns.url });
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
  await using agent = await startAgentSide({
    nats: ns.url,
    socket: service.socketPath,
    device: deviceId,
    session: sessionId,
    credit: String(window),
  });
  const agentIdle = procSample(agent.pid)?.rssKb ?? NaN;
  const agentPeak = new PeakRss(agent.pid, 50);
  const readerPeak = new PeakRss("self", 50);
  const started = performance.now();
  await agent.go();
  let bytes = 0;
  let reason = "";
  for await (const event of client.events()) {
    if ("data" in event) {
      bytes += event.data.length;
      client.consumed(event.data.length);
    } else if ("end" in event) {
      reason = event.end.reason;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const agentMax = agentPeak.stop();
  const readerMax = readerPeak.stop();
  await cliNc.close();
  if (reason !== "done" || bytes !== lines * 1024) {
    throw new Error(`the session ended ${reason} after ${bytes} of ${lines * 1024} bytes`);
  }
  printLine(
    `logs mb=${mb} seconds=${fmt(seconds, 2)} throughput=${fmt(bytes / 1e6 / seconds, 1)}MB/s ` +
      `window=${window} agent_idle_rss=${fmt(agentIdle / 1024)}MB ` +
      `agent_max_rss=${fmt(agentMax / 1024)}MB reader_max_rss=${fmt(readerMax / 1024)}MB`,
  );
} finally {
  await podman.removeContainer(id);
}

/**
 * The agent's side ({@link ./_logs_agent.ts}) in a process of its own, connected and ready;
 * `go` opens the session, disposing of it ends the process.
 */
async function startAgentSide(args: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      new URL("./_logs_agent.ts", import.meta.url).pathname,
      ...Object.entries(args).map(([key, value]) => `--${key}=${value}`),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const said = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  for (let text = ""; !text.includes("ready\n");) {
    const { value, done } = await said.read();
    if (done) throw new Error(`the agent side exited (${(await child.status).code}) before ready`);
    text += value;
  }
  const stdin = child.stdin.getWriter();
  return {
    pid: child.pid,
    go: () => stdin.write(new TextEncoder().encode("go\n")),
    async [Symbol.asyncDispose]() {
      await stdin.close();
      await said.cancel();
      const status = await child.status;
      if (!status.success) throw new Error(`the agent side failed (exit ${status.code})`);
    },
  };
}
