/**
 * An agent for tests: a real {@link Agent} on a fake clock (or the real one, where podman's own
 * timestamps must agree with the agent's) and a test runtime, with its log kept, running until
 * `stop()`.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type CredentialSource, noCredentials } from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { DeviceConsumerKeeper } from "../operator/device_consumers.ts";
import { NatsDeviceConsumers } from "../operator/nats_device_consumers.ts";
import { Agent, type AgentOptions } from "../agent/agent.ts";
import { AgentConfig } from "../agent/config.ts";
import type { ContainerRuntime } from "../agent/runtime.ts";
import type { Clock } from "../core/clock.ts";
import { captureLogger } from "./nats.ts";

export interface TestAgentOptions {
  deviceId: string;
  stateDir: string;
  natsUrl: string;
  runtime: ContainerRuntime;
  clock: Clock;
  /** Added to the agent's config (labels, intervals, ...). */
  config?: Record<string, unknown>;
  /** The backoff's jitter. @default no jitter */
  random?: () => number;
  /** How it proves who it is to NATS. @default no credentials */
  credentials?: CredentialSource;
  /** The heap and code pages the agent gives back after a burst of work. @default the agent's */
  memory?: Pick<AgentOptions, "heap" | "code">;
}

/** A running test agent: its log lines (info and up) and how to stop it. */
export interface TestAgent {
  agent: Agent;
  lines: string[];
  stop(): Promise<void>;
}

export function runTestAgent(options: TestAgentOptions): TestAgent {
  const { logger, lines } = captureLogger("info");
  const agent = new Agent({
    config: AgentConfig.parse({
      device_id: options.deviceId,
      state_dir: options.stateDir,
      nats: { urls: [options.natsUrl] },
      podman: { socket: "/nonexistent/podman.sock" },
      ...options.config,
    }),
    credentials: options.credentials ?? noCredentials(),
    configPath: "/etc/fleet-agent/config.toml",
    runtime: options.runtime,
    log: logger,
    version: "0.0.0-test",
    runtimeDescription: "in memory",
    clock: options.clock,
    random: options.random ?? (() => 0),
    ...options.memory,
  });
  const controller = new AbortController();
  const done = agent.run(controller.signal);
  return {
    agent,
    lines,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

/**
 * What the operator does for the agents under test: each device's desired-state consumer,
 * re-created as soon as an agent deletes it. `sync()` creates the missing ones (at the start,
 * after a bucket was rebuilt); dispose stops it.
 */
export async function keepDeviceConsumers(
  nc: NatsConnection,
  deviceIds: string[],
): Promise<{ sync(): Promise<void> } & AsyncDisposable> {
  const controller = new AbortController();
  const keeper = new DeviceConsumerKeeper({
    store: new NatsDeviceConsumers({ nc, log: silentLogger, heartbeatMs: 1000 }),
    devices: new Set(deviceIds),
    complete: () => true,
    clock: systemClock,
    log: silentLogger,
    intervalMs: 3_600_000,
  });
  const running = keeper.run(controller.signal);
  await keeper.audit();
  return {
    sync: () => keeper.audit(),
    async [Symbol.asyncDispose]() {
      controller.abort();
      await running;
    },
  };
}
