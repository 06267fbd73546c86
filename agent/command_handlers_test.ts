import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import type { PodmanService } from "../core/mod.ts";
import { MemoryRuntime } from "../testing/memory_runtime.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { AgentConfig } from "./config.ts";
import { type AgentFacts, commandHandlers } from "./command_handlers.ts";
import { CommandRefused } from "./command_responder.ts";
import { recordingWarnings, WarningRing } from "./warnings.ts";
import { silentLogger } from "../adapters/logger.ts";

const DEVICE = "pi-01";

function service(name: string): PodmanService {
  return {
    name,
    image: "localhost/web:1",
    ports: [],
    env: [],
    volumes: [],
    restartPolicy: "always",
  };
}

function setup(overrides: Partial<AgentFacts> = {}) {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const web = { namespace: "default", name: "web" };
  const app = runtime.add(web, service("app"));
  const db = runtime.add(web, service("db"));
  runtime.take();
  const warnings = new WarningRing(2);
  const facts: AgentFacts = {
    config: AgentConfig.parse({
      device_id: DEVICE,
      state_dir: "/var/lib/fleet-agent",
      nats: {
        urls: ["nats://10.0.0.5:4222"],
        credentials: { type: "userpass", user: "pi", password: "hunter2" },
      },
      podman: { socket: "/run/podman/podman.sock" },
      labels: { site: "lab" },
      intervals: { stop_timeout_seconds: 3 },
    }),
    version: "1.2.3",
    clock,
    nc: { rtt: () => Promise.resolve(4) } as unknown as NatsConnection,
    runtime,
    credentials: `user "pi" with a password`,
    startedAt: clock.monotonic(),
    cachePath: "/var/lib/fleet-agent/desired-state.json",
    desiredCount: () => 1,
    readFromNats: () => true,
    states: () => new Map(),
    warnings,
    reconcileNow: () => Promise.resolve({ passes: 7, durationMs: 12 }),
    ...overrides,
  };
  return { clock, runtime, app, db, warnings, handlers: commandHandlers(facts) };
}

Deno.test("restart handler restarts the deployment's containers once per request id", async () => {
  const { runtime, app, db, handlers } = setup();
  const request = { requestId: "r-1", namespace: "default", deployment: "web" };
  assert.deepEqual(await handlers.restart(request), {
    restarted: [{ service: "app", containerId: app }, { service: "db", containerId: db }],
    repeated: false,
  });
  assert.deepEqual(runtime.take(), [`restart ${app} timeout=3`, `restart ${db} timeout=3`]);
  assert.equal((await handlers.restart(request)).repeated, true);
  assert.deepEqual(runtime.take(), [], "a retry restarts nothing");
  await handlers.restart({ ...request, requestId: "r-2", service: "db" });
  assert.deepEqual(runtime.take(), [`restart ${db} timeout=3`]);
});

Deno.test("restart handler refuses a deployment that has no container here, naming it", async () => {
  const { handlers } = setup();
  await assert.rejects(
    handlers.restart({ requestId: "r-1", namespace: "shop", deployment: "web" }),
    (e: unknown) =>
      e instanceof CommandRefused &&
      e.message === `no container of deployment "web" in namespace "shop" runs on this device`,
  );
});

Deno.test("ping handler gives the version, uptime, device clock and NATS round trip", async () => {
  const { clock, handlers } = setup();
  await clock.advance(90_000);
  assert.deepEqual(await handlers.ping({ requestId: "p" }), {
    agentVersion: "1.2.3",
    uptimeSeconds: 90,
    deviceTime: clock.now(),
    natsRttMs: 4,
  });
});

Deno.test("diag handler shows the config without its password, and the last warnings", async () => {
  const { clock, warnings, handlers } = setup();
  const log = recordingWarnings(silentLogger, warnings, clock);
  log.info("not kept");
  log.warn("first");
  log.warn("second", { attempt: 2 });
  log.error("third");
  const diag = await handlers.diag({ requestId: "d" });
  assert.ok(!JSON.stringify(diag).includes("hunter2"));
  assert.equal(diag.config.credentials, `user "pi" with a password`);
  assert.equal(diag.podman.version, "memory runtime");
  assert.deepEqual(diag.warnings.map((w) => `${w.level} ${w.message}`), [
    "warn second attempt=2",
    "error third",
  ]);
});

Deno.test("diag handler reports podman not answering instead of failing", async () => {
  const { handlers, runtime } = setup();
  runtime.version = () => Promise.reject(new Error("connect ENOENT /run/podman/podman.sock"));
  const diag = await handlers.diag({ requestId: "d" });
  assert.deepEqual(diag.podman, {
    healthy: false,
    error: "connect ENOENT /run/podman/podman.sock",
  });
});
