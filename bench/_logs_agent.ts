/**
 * The agent's side of `bench:logs`, in a process of its own so its memory is measured apart
 * from the reader's: LogSessions over PodmanRuntime, publishing on the bench's nats-server.
 * Says `ready` on stdout once connected, opens the session on the `go` line from stdin, and
 * exits when stdin closes (after the bench read its memory).
 *
 * `deno run -A bench/_logs_agent.ts --nats URL --socket PATH --device ID --session ID --credit N`
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { LogsRequest } from "../core/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import { silentLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { LogSessions } from "../agent/log_sessions.ts";
import { natsSessionTransport } from "../agent/session.ts";
import { PodmanRuntime } from "../agent/podman_runtime.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    nats: { type: "string" },
    socket: { type: "string" },
    device: { type: "string" },
    session: { type: "string" },
    credit: { type: "string" },
  },
});
const { nats, socket, device, session, credit } = values;
if (!nats || !socket || !device || !session || !credit) {
  throw new Error("--nats, --socket, --device, --session and --credit are all needed");
}

const nc = await connect({ servers: nats });
using podman = new PodmanClient({ socketPath: socket });
const sessions = new LogSessions({
  deviceId: device,
  transport: natsSessionTransport(nc, silentLogger),
  clock: systemClock,
  log: silentLogger,
  audit: () => Promise.resolve(),
  runtime: new PodmanRuntime(podman),
  journal: () => Promise.reject(new Error("no journal in the bench")),
});
printLine("ready");
const stdin = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
for (let text = ""; !text.includes("\n");) {
  const { value, done } = await stdin.read();
  if (done) throw new Error("stdin closed before the go line");
  text += value;
}
await sessions.open(
  LogsRequest.parse({
    requestId: "bench",
    sessionId: session,
    namespace: "default",
    deployment: "chatty",
    credit: Number(credit),
  }),
  "bench",
);
while (!(await stdin.read()).done) {
  // Until the bench is done with this process.
}
await sessions.endAll("going-away", "the bench is over");
await nc.close();
