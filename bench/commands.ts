/**
 * Ping round trips to many devices (issue 14, item 5): a real nats-server, N simulated devices
 * each answering through the agent's own CommandResponder (subject parsing, request check, the
 * audit record stored in the `fleet-audit` stream before the reply), and the CLI's request path
 * (`askDevice`) asking each in turn, then all of them with some at a time. Devices share a few
 * connections (routing costs the server the same per message). Prints one line of figures, last.
 *
 * `deno task bench:commands [--devices 1000] [--connections 50] [--concurrency 50]`
 */
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { AUDIT_STREAM } from "../core/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import { silentLogger } from "../adapters/logger.ts";
import { ensureAuditStream, publishAudit } from "../adapters/nats/mod.ts";
import { CommandRefused, CommandResponder } from "../agent/command_responder.ts";
import { askDevice } from "../commands/_device_commands.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { fmt, percentile, say } from "./_figures.ts";
import { printLine } from "../adapters/output.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "1000" },
    connections: { type: "string", default: "50" },
    concurrency: { type: "string", default: "50" },
  },
});
const count = (name: keyof typeof values) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
};
const devices = count("devices");
const connections = Math.min(count("connections"), devices);
const concurrency = count("concurrency");

await using ns = await startNatsServer();
const admin = await connect({ servers: ns.url });
await ensureAuditStream(admin, 1);
const conns: NatsConnection[] = [];
for (let i = 0; i < connections; i++) conns.push(await connect({ servers: ns.url }));
const started = systemClock.monotonic();
const refuse = () => Promise.reject(new CommandRefused("not simulated"));
const responders = Array.from({ length: devices }, (_, i) => {
  const nc = conns[i % connections]!;
  return new CommandResponder({
    nc,
    deviceId: `sim-${i}`,
    log: silentLogger,
    clock: systemClock,
    audit: (record) => publishAudit(nc, record),
    handlers: {
      ping: () =>
        Promise.resolve({
          agentVersion: "bench",
          uptimeSeconds: (systemClock.monotonic() - started) / 1000,
          deviceTime: systemClock.now(),
        }),
      diag: refuse,
      restart: refuse,
      reconcile: refuse,
      logs: refuse,
    },
  });
});
for (const nc of conns) await nc.flush();
say(`${devices} simulated devices answering on ${connections} connections`);

const requester = await connect({ servers: ns.url });
let asked = 0;
const ping = async (i: number) =>
  (await askDevice(requester, `sim-${i}`, "ping", { requestId: `b-${asked++}` }, 10_000))
    .roundTripMs;
// Warm-up: the first requests pay for subscriptions and JIT.
for (let i = 0; i < Math.min(50, devices); i++) await ping(i);
const sequential: number[] = [];
for (let i = 0; i < devices; i++) sequential.push(await ping(i));
sequential.sort((a, b) => a - b);
say(`one at a time: p50 ${fmt(percentile(sequential, 0.5), 2)} ms`);

const concurrent: number[] = [];
const sweepStart = performance.now();
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < devices) concurrent.push(await ping(next++));
}));
const sweepMs = performance.now() - sweepStart;
concurrent.sort((a, b) => a - b);
const stored = (await (await jetstreamManager(admin)).streams.info(AUDIT_STREAM)).state.messages;

for (const r of responders) r.stop();
for (const nc of [...conns, requester, admin]) await nc.close();
printLine(
  `ping devices=${devices} connections=${connections} ` +
    `sequential p50=${fmt(percentile(sequential, 0.5), 2)}ms p99=${
      fmt(percentile(sequential, 0.99), 2)
    }ms ` +
    `concurrent(${concurrency}) p50=${fmt(percentile(concurrent, 0.5), 2)}ms p99=${
      fmt(percentile(concurrent, 0.99), 2)
    }ms all=${fmt(sweepMs)}ms audit_records=${stored}`,
);
