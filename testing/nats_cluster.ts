/**
 * Runs a cluster of real `nats-server` processes (JetStream on, loopback only) for tests
 * and benchmarks: each server has its own client port, cluster port and JetStream store,
 * and routes to all the others. Built on {@link startNatsServer}.
 */

import { connect } from "@nats-io/transport-node";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { freePort } from "../adapters/process.ts";
import { waitFor } from "../adapters/timers.ts";
import { type NatsServer, NatsServerError, startNatsServer } from "../sandbox/nats_server.ts";
import { errorMessage } from "../core/errors.ts";

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
 * Servers started at the same moment sometimes form a JetStream meta group that never takes
 * in one of them: a stream with a replica on every server then can never be placed ("no
 * suitable peers for placement"). Three nats-server 2.10.27 started at once did so in 7 of 150
 * starts here (the meta group said 2 members on all three servers); 2.15.3 in none of 231.
 * Servers are therefore started one after another, and a cluster that still cannot place
 * such a stream within this long is started again from scratch.
 */
const PLACEMENT_TIMEOUT_MS = 30_000;
const START_ATTEMPTS = 3;

/**
 * Starts `size` nats-servers clustered on 127.0.0.1 and waits until JetStream has a meta
 * leader and can place a stream replicated on every server.
 *
 * @throws {NatsServerError} when a server fails to start, JetStream has no meta leader in
 *   90 s, or no placement works after three fresh starts.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1) {
    throw new NatsServerError(`A cluster needs at least one server, not ${size}`);
  }
  for (let attempt = 1;; attempt++) {
    const cluster = await startServers(size);
    try {
      await cluster.waitReady();
      await cluster.waitForPlacement(PLACEMENT_TIMEOUT_MS);
      return cluster;
    } catch (err) {
      await cluster[Symbol.asyncDispose]();
      if (!(err instanceof PlacementError) || attempt === START_ATTEMPTS) throw err;
    }
  }
}

/** The cluster answers but cannot place a stream on every server. */
class PlacementError extends NatsServerError {
  override name = "PlacementError";
}

async function startServers(size: number): Promise<NatsClusterProcesses> {
  const clientPorts = Array.from({ length: size }, () => freePort());
  const clusterPorts = Array.from({ length: size }, () => freePort());
  const servers: NatsServer[] = [];
  for (const [i, port] of clientPorts.entries()) {
    try {
      servers.push(await startNatsServer({ port, extraConfig: clusterConfig(i, clusterPorts) }));
    } catch (err) {
      await new NatsClusterProcesses(servers)[Symbol.asyncDispose]();
      throw err;
    }
  }
  return new NatsClusterProcesses(servers);
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
    const why = await this.#retry("fleet-cluster-ready", timeoutMs, 100, async (jsm) => {
      await jsm.getAccountInfo();
      const leaderless = [];
      for (const stream of streams) {
        const info = await jsm.streams.info(stream);
        if (!info.cluster?.leader) leaderless.push(stream);
      }
      if (leaderless.length > 0) {
        throw new Error(`stream ${leaderless.join(", ")} has no leader yet`);
      }
    });
    if (why === undefined) return;
    throw new NatsServerError(
      `The nats-server cluster had no JetStream meta leader${
        streams.length ? " or stream leaders" : ""
      } within ${timeoutMs / 1000} s ` +
        `(${why}); last log lines:\n${await this.#logTails()}`,
    );
  }

  /** Creates and deletes a stream with a replica on every server until that works. */
  async waitForPlacement(timeoutMs: number): Promise<void> {
    const probe = "FLEET_PLACEMENT_PROBE";
    const why = await this.#retry("fleet-cluster-placement", timeoutMs, 250, async (jsm) => {
      await jsm.streams.add({
        name: probe,
        subjects: ["fleet-internal.placement-probe"],
        num_replicas: this.servers.length,
      });
      await jsm.streams.delete(probe);
    });
    if (why === undefined) return;
    throw new PlacementError(
      `The nats-server cluster could not place a stream on all ${this.servers.length} ` +
        `servers within ${timeoutMs / 1000} s (${why}); last log lines:\n${await this.#logTails()}`,
    );
  }

  /**
   * Runs `attempt` through a client of every server until it does not throw or `timeoutMs`
   * passes. @returns undefined on success, else the last failure's message.
   */
  async #retry(
    name: string,
    timeoutMs: number,
    intervalMs: number,
    attempt: (jsm: JetStreamManager) => Promise<void>,
  ): Promise<string | undefined> {
    const nc = await connect({
      servers: this.urls,
      name,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    let last: unknown = "no attempt finished";
    try {
      await waitFor(
        name,
        async () => {
          try {
            await attempt(await jetstreamManager(nc, { timeout: 2000 }));
            return true;
          } catch (err) {
            last = err;
            return false;
          }
        },
        timeoutMs,
        intervalMs,
      );
      return undefined;
    } catch {
      return errorMessage(last);
    } finally {
      await nc.close();
    }
  }

  async #logTails(): Promise<string> {
    const tails = await Promise.all(
      this.servers.map(async (s, i) => `n${i + 1}:\n${await s.logTail(5)}`),
    );
    return tails.join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((s) => s[Symbol.asyncDispose]()));
  }
}
