/**
 * Runs a cluster of real `nats-server` processes (JetStream on, loopback only) for tests
 * and benchmarks: each server has its own client port, cluster port and JetStream store,
 * and routes to all the others. Built on {@link startNatsServer}.
 */

import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort } from "../process.ts";
import { type NatsServer, NatsServerError, startNatsServer } from "./server_process.ts";

/** Raft elects the meta leader within seconds on an idle machine; on a loaded one (a CI
 * runner, or a build beside the tests) it took more than 30 s. */
const READY_TIMEOUT_MS = 90_000;
const CLUSTER_NAME = "fleet";

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** Number of servers. @default 3 */
  size?: number;
}

/** A running nats-server cluster; `await using` stops every server and removes its data. */
export interface NatsCluster extends AsyncDisposable {
  /** Client URLs of all servers, in server order. */
  readonly urls: string[];
  /** The servers, `n1` at index 0; each keeps its ports and store across kill/restart. */
  readonly servers: readonly NatsServer[];
  /** Waits until JetStream answers through a client connected to every server (a meta
   * leader is elected) and each named stream has a leader: a replicated stream whose
   * leader died takes a moment to elect another, and until then its puts find no
   * responder. */
  waitReady(options?: { streams?: string[]; timeoutMs?: number }): Promise<void>;
}

/**
 * Starts `size` nats-servers clustered on 127.0.0.1 and waits until JetStream has a meta
 * leader.
 *
 * @throws {NatsServerError} when a server fails to start or JetStream is not ready in 90 s.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1) {
    throw new NatsServerError(`A cluster needs at least one server, not ${size}`);
  }
  const clientPorts = Array.from({ length: size }, () => freePort());
  const clusterPorts = Array.from({ length: size }, () => freePort());
  const started = await Promise.allSettled(clientPorts.map((port, i) =>
    startNatsServer({
      port,
      extraConfig: clusterConfig(i, clusterPorts),
    })
  ));
  const servers = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const cluster = new NatsClusterProcesses(servers);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await cluster[Symbol.asyncDispose]();
    throw failed.reason;
  }
  try {
    await cluster.waitReady();
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
  return cluster;
}

function clusterConfig(index: number, clusterPorts: number[]): string {
  const routes = clusterPorts
    .filter((_, i) => i !== index)
    .map((port) => `    "nats-route://127.0.0.1:${port}"`);
  return [
    // Overrides the server_name of the base config (the last value of a key wins).
    `server_name: "n${index + 1}"`,
    `cluster {`,
    `  name: "${CLUSTER_NAME}"`,
    `  listen: "127.0.0.1:${clusterPorts[index]}"`,
    `  routes: [`,
    ...routes,
    `  ]`,
    `}`,
  ].join("\n");
}

class NatsClusterProcesses implements NatsCluster {
  readonly servers: readonly NatsServer[];

  constructor(servers: NatsServer[]) {
    this.servers = servers;
  }

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  async waitReady(
    { streams = [], timeoutMs = READY_TIMEOUT_MS }: { streams?: string[]; timeoutMs?: number } = {},
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const nc = await connect({
      servers: this.urls,
      name: "fleet-cluster-ready",
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    let last: unknown;
    try {
      while (Date.now() < deadline) {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2000 });
          await jsm.getAccountInfo();
          const leaderless = [];
          for (const stream of streams) {
            const info = await jsm.streams.info(stream);
            if (!info.cluster?.leader) leaderless.push(stream);
          }
          if (leaderless.length === 0) return;
          last = new Error(`stream ${leaderless.join(", ")} has no leader yet`);
        } catch (err) {
          last = err;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await nc.close();
    }
    const why = last instanceof Error ? last.message : String(last);
    const tails = await Promise.all(
      this.servers.map(async (s, i) => `n${i + 1}:\n${await s.logTail(5)}`),
    );
    throw new NatsServerError(
      `The nats-server cluster had no JetStream meta leader${
        streams.length ? " or stream leaders" : ""
      } within ${timeoutMs / 1000} s ` +
        `(${why}); last log lines:\n${tails.join("\n")}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((s) => s[Symbol.asyncDispose]()));
  }
}
