/**
 * An agent for tests: a real {@link Agent} on a fake clock and a test runtime, with its log
 * kept, running until `stop()`.
 */
import { noCredentials } from "../adapters/nats/mod.ts";
import { Agent } from "../agent/agent.ts";
import { AgentConfig } from "../agent/config.ts";
import type { ContainerRuntime } from "../agent/runtime.ts";
import type { FakeClock } from "./fake_clock.ts";
import { captureLogger } from "./nats.ts";

export interface TestAgentOptions {
  deviceId: string;
  stateDir: string;
  natsUrl: string;
  runtime: ContainerRuntime;
  clock: FakeClock;
  /** Added to the agent's config (labels, intervals, ...). */
  config?: Record<string, unknown>;
  /** The backoff's jitter. @default no jitter */
  random?: () => number;
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
    credentials: noCredentials(),
    configPath: "/etc/fleet-agent/config.toml",
    runtime: options.runtime,
    log: logger,
    version: "0.0.0-test",
    runtimeDescription: "in memory",
    clock: options.clock,
    random: options.random ?? (() => 0),
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
