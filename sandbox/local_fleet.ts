/**
 * A whole fleet on one machine: a nats-server, a private podman service, the operator and
 * any number of agents, all real, in this process. `fleet demo` and the end-to-end tests
 * run on it.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { adoptableLabels, ContainerLabels, type Labels, MANAGED_BY } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { waitFor, withDeadline } from "../adapters/timers.ts";
import { systemClock } from "../adapters/clock.ts";
import { type NatsServer, startNatsServer } from "./nats_server.ts";
import { connectNats, type CredentialSource, noCredentials } from "../adapters/nats/mod.ts";
import { type PodmanService, startPodmanService } from "./podman_service.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { Agent, AgentConfig, PodmanRuntime } from "../agent/mod.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import {
  KubeDeviceLabelStore,
  NatsDeviceLabelStore,
  UnknownDeviceError,
} from "../cli/device_labels.ts";
import { createOperator, type KubeDeviceSink, type Operator } from "../operator/mod.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";

export interface DeviceSpec {
  deviceId: string;
  labels: Labels;
}

export interface Intervals {
  heartbeat_seconds: number;
  relist_seconds: number;
  republish_seconds: number;
  orphan_grace_seconds: number;
  stop_timeout_seconds: number;
}

/** Fast cadences so stories finish in seconds; production uses the config defaults. */
export const QUICK_INTERVALS: Intervals = {
  heartbeat_seconds: 2,
  relist_seconds: 3,
  republish_seconds: 5,
  orphan_grace_seconds: 10,
  stop_timeout_seconds: 5,
};

/** Retries included, the operator is ready in seconds; this long means it cannot be. */
const OPERATOR_READY_MS = 120_000;
/** Each step of stopping a local fleet: agents and operator stop within a second or two. */
const STOP_STEP_MS = 30_000;

export interface RunningAgent {
  agent: Agent;
  stop(): Promise<void>;
}

interface RunningOperator {
  operator: Operator;
  nc: NatsConnection;
  stop(): Promise<void>;
}

/** Who each part of the fleet is to NATS; no credentials when absent. */
export interface FleetIdentities {
  /** The CLI-side client (fleet apply/get): an admin. */
  client: CredentialSource;
  operator: CredentialSource;
  device(deviceId: string): CredentialSource;
}

export interface LocalFleetOptions {
  log: Logger;
  version: string;
  /** Extra nats-server configuration, e.g. the auth callout block. */
  natsConfig?: string;
  identities?: FleetIdentities;
  intervals?: Intervals;
  /** Operator: devices without a heartbeat for this long are unreachable. */
  staleAfterMs?: number;
  /**
   * Starts a nats-server cluster to run on instead of one server (the tests' cluster
   * fixture; `fleet demo` runs on one server): every client gets all
   * URLs and buckets are created with 3 replicas. @default false
   */
  cluster?: () => Promise<LocalNatsCluster>;
}

/** What a local fleet needs of a nats-server cluster: its URLs, its servers, a stop. */
export interface LocalNatsCluster extends AsyncDisposable {
  readonly urls: string[];
  readonly servers: readonly NatsServer[];
}

export class LocalFleet implements AsyncDisposable {
  /** The nats-server; on a cluster, its first server (see {@link LocalFleet.cluster}). */
  readonly nats: NatsServer;
  /** The nats-server cluster, when started with a `cluster` option. */
  readonly cluster: LocalNatsCluster | undefined;
  readonly podmanService: PodmanService;
  readonly podman: PodmanClient;
  readonly log: Logger;
  readonly agents = new Map<string, RunningAgent>();
  /** Every device an agent of this fleet ran as, stopped ones included: its containers. */
  readonly #devices = new Set<string>();
  /** The registry labels this fleet gave each device, so a restarted agent needs no broker. */
  readonly #labelled = new Map<string, string>();
  readonly #options: LocalFleetOptions;
  /** The API server of a kube-source operator: Device objects hold the device labels. */
  #kube: KubeClient | undefined;
  readonly #stateRoot: string;
  #operator: RunningOperator | undefined;
  #client: NatsConnection | undefined;

  private constructor(
    options: LocalFleetOptions,
    nats: NatsServer | LocalNatsCluster,
    podmanService: PodmanService,
    stateRoot: string,
  ) {
    this.#options = options;
    this.log = options.log;
    this.cluster = "servers" in nats ? nats : undefined;
    this.nats = "servers" in nats ? nats.servers[0]! : nats;
    this.podmanService = podmanService;
    this.podman = new PodmanClient({ socketPath: podmanService.socketPath });
    this.#stateRoot = stateRoot;
  }

  /** Starts nats-server and a podman service; the operator and agents start on request. */
  static async start(options: LocalFleetOptions): Promise<LocalFleet> {
    const stateRoot = await Deno.makeTempDir({ prefix: "fleet-local-" });
    if (options.cluster && options.natsConfig) {
      throw new Error("natsConfig is not supported on a cluster");
    }
    const nats = options.cluster ? await options.cluster() : await startNatsServer(
      options.natsConfig ? { extraConfig: options.natsConfig } : {},
    );
    try {
      const podman = await startPodmanService();
      return new LocalFleet(options, nats, podman, stateRoot);
    } catch (error) {
      await nats[Symbol.asyncDispose]();
      throw error;
    }
  }

  get intervals(): Intervals {
    return this.#options.intervals ?? QUICK_INTERVALS;
  }

  /** Client URLs of the NATS server, or of every server of the cluster. */
  get natsUrls(): string[] {
    return this.cluster ? this.cluster.urls : [this.nats.url];
  }

  /** Bucket replicas: 3 on a cluster, else 1. */
  get replicas(): number {
    return this.cluster ? 3 : 1;
  }

  get operator(): Operator | undefined {
    return this.#operator?.operator;
  }

  /** A client-side NATS connection, like the CLI's (opened once, closed on dispose). */
  async connection(): Promise<NatsConnection> {
    const nc = this.#client ?? await connectNats({
      servers: this.natsUrls,
      credentials: this.#options.identities?.client ?? noCredentials(),
      name: "fleet-local-client",
      logger: this.log.with({ component: "client" }),
    });
    this.#client = nc;
    return nc;
  }

  /** A CLI-side store, like `fleet apply` uses. */
  async store(): Promise<NatsDeploymentStore> {
    return new NatsDeploymentStore(await this.connection(), this.log, this.replicas);
  }

  /**
   * Starts the operator in this process. With `kube`, Deployments come from that API server
   * and devices are mirrored as Device objects; otherwise the nats source is used.
   */
  async startOperator(options: { kube?: KubeClient } = {}): Promise<Operator> {
    if (this.#operator) throw new Error("the operator is already running");
    this.#kube = options.kube;
    const log = this.log.with({ component: "operator" });
    const controller = new AbortController();
    const nc = await connectNats({
      servers: this.natsUrls,
      credentials: this.#options.identities?.operator ?? noCredentials(),
      name: "fleet-operator",
      logger: log,
    });
    const operator = createOperator({
      nc,
      log,
      replicas: this.replicas,
      source: options.kube ? { kind: "kube", client: options.kube } : { kind: "nats" },
      auditIntervalMs: 1000,
      watchHeartbeatMs: 1000,
      deviceHeartbeatMs: 1000,
      // A sandbox on one machine: its namespaces need no admin to bind them.
      allowUnboundNamespaces: true,
      ...(this.#options.staleAfterMs ? { staleAfterMs: this.#options.staleAfterMs } : {}),
    });
    const run = operator.run(controller.signal);
    const done = run.catch((error) => {
      log.error(`Operator stopped: ${(error as Error).message}`);
    });
    this.#operator = {
      operator,
      nc,
      stop: async () => {
        controller.abort();
        await done;
        await nc.close();
      },
    };
    // An operator that fails, or cannot get ready (it retries for as long as NATS cannot serve
    // it, as it should in production), must fail this call, not leave it waiting.
    await withDeadline(
      Promise.race([
        operator.ready,
        run.then(() => {
          throw new Error("The operator stopped before it was ready");
        }),
      ]),
      OPERATOR_READY_MS,
      `The operator was not ready within ${OPERATOR_READY_MS / 1000} s; its log says why`,
    );
    return operator;
  }

  /** The operator's NATS connection (e.g. `getServer()` for failover tests). */
  get operatorConnection(): NatsConnection | undefined {
    return this.#operator?.nc;
  }

  /** The Device mirror of a kube-source operator, for tests. */
  get deviceSink(): KubeDeviceSink | undefined {
    return this.#operator?.operator.kubeDevices;
  }

  async stopOperator(): Promise<void> {
    await this.#operator?.stop();
    this.#operator = undefined;
  }

  /** The config an agent of this fleet runs with. */
  agentConfig(device: DeviceSpec): AgentConfig {
    return AgentConfig.parse({
      device_id: device.deviceId,
      labels: device.labels,
      state_dir: `${this.#stateRoot}/${device.deviceId}`,
      nats: { urls: this.natsUrls },
      podman: { socket: this.podmanService.socketPath },
      intervals: this.intervals,
    });
  }

  /**
   * Starts an agent as `device`, labelled as enrollment does: its selectable labels in the
   * registry the operator targets on (the device-labels bucket; with a kube-source operator,
   * its Device object, once the operator has mirrored it), and in its config, where they are
   * only reported. A person labels a device once: an agent restarted with the same labels
   * starts even while the broker is down.
   */
  async startAgent(device: DeviceSpec): Promise<Agent> {
    const labels = adoptableLabels(device.labels);
    const add = (current: Labels) => ({ ...current, ...labels });
    const kube = this.#kube;
    const given = JSON.stringify(labels);
    const relabel = Object.keys(labels).length > 0 &&
      this.#labelled.get(device.deviceId) !== given;
    if (!kube && relabel) {
      await new NatsDeviceLabelStore(await this.connection(), this.replicas)
        .edit(device.deviceId, add);
    }
    const agent = this.#startAgent(device);
    if (kube && relabel) {
      const store = new KubeDeviceLabelStore(kube);
      await waitFor(`the Device object of ${device.deviceId} to label it`, async () => {
        try {
          return await store.edit(device.deviceId, add);
        } catch (error) {
          if (error instanceof UnknownDeviceError) return undefined;
          throw error;
        }
      }, OPERATOR_READY_MS);
    }
    this.#labelled.set(device.deviceId, given);
    return agent;
  }

  #startAgent(device: DeviceSpec): Agent {
    if (this.agents.has(device.deviceId)) {
      throw new Error(`agent ${device.deviceId} is already running`);
    }
    const log = this.log.with({ device: device.deviceId });
    const client = new PodmanClient({ socketPath: this.podmanService.socketPath });
    const agent = new Agent({
      config: this.agentConfig(device),
      credentials: this.#options.identities?.device(device.deviceId) ?? noCredentials(),
      runtime: new PodmanRuntime(client),
      log,
      version: this.#options.version,
      runtimeDescription: "podman (local fleet)",
      clock: systemClock,
    });
    const controller = new AbortController();
    const done = agent.run(controller.signal).catch((error) => {
      log.error(`Agent stopped: ${(error as Error).message}`);
    });
    this.#devices.add(device.deviceId);
    this.agents.set(device.deviceId, {
      agent,
      stop: async () => {
        controller.abort();
        await done;
        client.close();
      },
    });
    return agent;
  }

  async stopAgent(deviceId: string): Promise<void> {
    await this.agents.get(deviceId)?.stop();
    this.agents.delete(deviceId);
  }

  /**
   * The containers of device `deviceId`, or of every device this fleet's agents ran as. The
   * machine's podman storage is shared (other tests, other fleets, a person's own containers),
   * so it is never "every managed container": always filtered by the device-id label.
   */
  async containers(deviceId?: string) {
    const filter: Record<string, string> = { [ContainerLabels.managedBy]: MANAGED_BY };
    if (deviceId) filter[ContainerLabels.deviceId] = deviceId;
    const found = await this.podman.listContainers(filter);
    return deviceId
      ? found
      : found.filter((c) => this.#devices.has(c.labels[ContainerLabels.deviceId] ?? ""));
  }

  /**
   * Stops everything it started and removes the containers its agents created. Each step gets
   * {@link STOP_STEP_MS}: one that hangs is reported, and the servers are stopped regardless.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, work: () => PromiseLike<void>) => {
      try {
        await withDeadline(work(), STOP_STEP_MS, `did not finish within ${STOP_STEP_MS / 1000} s`);
      } catch (error) {
        problems.push(`${what}: ${(error as Error).message}`);
      }
    };
    for (const id of [...this.agents.keys()]) {
      await step(`stopping agent ${id}`, () => this.stopAgent(id));
    }
    await step("stopping the operator", () => this.stopOperator());
    await step("closing the client connection", async () => await this.#client?.close());
    // Those of agents stopped earlier too (a story that stops one and never restarts it).
    await step("removing the agents' containers", async () => {
      for (const c of await this.containers()) await this.podman.removeContainer(c.id);
    });
    this.podman.close();
    await step("stopping the podman service", () => this.podmanService.stop());
    await step("stopping NATS", () => (this.cluster ?? this.nats)[Symbol.asyncDispose]());
    await Deno.remove(this.#stateRoot, { recursive: true });
    if (problems.length > 0) {
      throw new Error(`The local fleet did not stop cleanly: ${problems.join("; ")}`);
    }
  }
}
