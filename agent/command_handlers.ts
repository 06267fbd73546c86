/**
 * What the agent does for each command verb, over what it already holds: its config, the
 * reporter's view of its deployments, the container runtime, and its reconcile loop.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Clock } from "../core/clock.ts";
import type { DeploymentState } from "../core/deployment_state.ts";
import {
  type CommandVerb,
  type ReconcileResult,
  ReplyMemo,
  type RestartResult,
  selectedContainers,
} from "../core/device_commands.ts";
import type { AgentConfig } from "./config.ts";
import type { ContainerRuntime } from "./runtime.ts";
import type { WarningRing } from "./warnings.ts";
import { type CommandHandlers, CommandRefused } from "./command_responder.ts";

/** What the handlers read from the running agent. */
export interface AgentFacts {
  config: AgentConfig;
  version: string;
  clock: Clock;
  nc: NatsConnection;
  runtime: ContainerRuntime;
  /** How the agent authenticates (never a secret). */
  credentials: string;
  /** Monotonic ms when the agent started. */
  startedAt: number;
  cachePath: string;
  desiredCount: () => number;
  readFromNats: () => boolean;
  states: () => ReadonlyMap<string, DeploymentState>;
  warnings: WarningRing;
  /** Runs a reconcile pass that starts after the call; resolves when it ended. */
  reconcileNow: () => Promise<ReconcileResult>;
}

/** The verbs answered here: all but `logs` and `exec`, which open sessions (agent/log_sessions.ts, agent/exec_sessions.ts). */
type AnsweredHere = Exclude<CommandVerb, "logs" | "exec">;

/** Handlers that do not depend on who asked (the broker already checked the role). */
export type PlainHandlers = {
  [V in AnsweredHere]: (
    request: Parameters<CommandHandlers[V]>[0],
  ) => ReturnType<CommandHandlers[V]>;
};

/** The handlers of every verb but the sessions', over `facts`. */
export function commandHandlers(facts: AgentFacts): PlainHandlers {
  const { config, clock, runtime } = facts;
  // A retried restart (same request id) is answered from here, not restarted again.
  const restarts = new ReplyMemo<RestartResult>();
  return {
    async ping() {
      let natsRttMs: number | undefined;
      try {
        natsRttMs = await facts.nc.rtt();
      } catch {
        // Not connected right now: the ping got here, so this is a moment's gap.
      }
      return {
        agentVersion: facts.version,
        uptimeSeconds: Math.round((clock.monotonic() - facts.startedAt) / 1000),
        deviceTime: clock.now(),
        ...(natsRttMs === undefined ? {} : { natsRttMs }),
      };
    },
    async diag() {
      let podman: { healthy: boolean; version?: string; error?: string };
      try {
        podman = { healthy: true, version: await runtime.version() };
      } catch (error) {
        podman = { healthy: false, error: (error as Error).message };
      }
      return {
        agentVersion: facts.version,
        config: {
          deviceId: config.device_id,
          natsUrls: config.nats.urls,
          credentials: facts.credentials,
          podmanSocket: config.podman.socket,
          stateDir: config.state_dir,
          labels: config.labels,
        },
        podman,
        desiredCache: {
          path: facts.cachePath,
          deployments: facts.desiredCount(),
          readFromNats: facts.readFromNats(),
        },
        deployments: [...facts.states().values()].map((s) => ({
          namespace: s.namespace,
          deployment: s.deployment,
          generation: s.generation,
          phase: s.phase,
          ...(s.lastError === null ? {} : { lastError: s.lastError }),
        })),
        warnings: facts.warnings.items(),
      };
    },
    restart(request) {
      const { reply, first } = restarts.reply(request.requestId, clock.monotonic(), async () => {
        const targets = selectedContainers(await runtime.listManaged(config.device_id), request);
        if ("problem" in targets) throw new CommandRefused(targets.problem);
        for (const c of targets.containers) {
          await runtime.restart(c.containerId, config.intervals.stop_timeout_seconds);
        }
        return { restarted: targets.containers, repeated: false };
      });
      return first ? reply : reply.then((r) => ({ ...r, repeated: true }));
    },
    reconcile() {
      return facts.reconcileNow();
    },
  };
}
