/**
 * The simulated devices of both control-plane benchmarks: N devices over a few NATS
 * connections, device i writing on connection i % C, each connection pipelining its puts
 * ({@link KvPipeline}). Registration puts every device's info and a first heartbeat; then the
 * whole fleet beats once per 30 s, spread evenly over the period.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  Buckets,
  DEVICE_ID_LABEL,
  type DeviceInfo,
  type Heartbeat,
  keys,
  type RegisteredLabels,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import { every } from "../adapters/timers.ts";
import { KvPipeline } from "./_kv_pipeline.ts";
import { deviceId, registryLabels } from "./_sim_fleet.ts";

const HEARTBEAT_PERIOD_MS = 30_000;
/** Device `i`'s agent instance id: one per simulated device, steady for the whole run. */
function instanceOf(i: number): string {
  return `b${i.toString(36).padStart(7, "0")}`;
}

/** The heartbeats of a period go out in batches this often. */
const BEAT_TICK_MS = 100;

/**
 * `count` NATS connections named `<name>-<c>`; on a cluster connection c prefers server
 * c % size, so the connections spread over it.
 */
export async function connectClients(
  urls: string[],
  count: number,
  name: string,
  log: Logger,
): Promise<NatsConnection[]> {
  const conns: NatsConnection[] = [];
  for (let c = 0; c < count; c++) {
    const first = c % urls.length;
    conns.push(
      await connectNats({
        servers: [...urls.slice(first), ...urls.slice(0, first)],
        credentials: noCredentials(),
        name: `${name}-${c}`,
        logger: log,
      }),
    );
  }
  return conns;
}

export interface DeviceSimulatorOptions {
  /** The connections the devices write on. */
  conns: NatsConnection[];
  /** Puts in flight per connection. */
  window: number;
  devices: number;
  /** Deployments, whose selectors the devices' labels are made for. */
  deployments: number;
  /** Device i's registry labels. @default registryLabels(i, deployments) (_sim_fleet.ts) */
  labelsOf?: (i: number) => Record<string, string>;
}

export class DeviceSimulator {
  readonly #pipes: KvPipeline[];
  readonly #n: number;
  readonly #labelsOf: (i: number) => Record<string, string>;
  /** Puts in flight per connection. */
  readonly window: number;
  /** Devices whose heartbeats stopped (kube's reachability phase). */
  readonly silenced = new Set<number>();

  constructor(options: DeviceSimulatorOptions) {
    this.window = options.window;
    this.#pipes = options.conns.map((nc) => new KvPipeline(nc, options.window));
    this.#n = options.devices;
    const m = options.deployments;
    this.#labelsOf = options.labelsOf ?? ((i) => registryLabels(i, m));
  }

  /** A put of device `i`, on its connection. */
  put(i: number, bucket: string, key: string, value: string): Promise<void> {
    return this.#pipes[i % this.#pipes.length]!.put(bucket, key, value);
  }

  /**
   * A person labels every device in the registry the operator targets on (the nats source's
   * device-labels bucket), as enrollment does; resolves when all are acknowledged.
   */
  async labelAll(): Promise<void> {
    for (let i = 0; i < this.#n; i++) {
      const labels = this.#labelsOf(i);
      await this.put(
        i,
        Buckets.deviceLabels,
        keys.deviceLabels(deviceId(i)),
        JSON.stringify(
          {
            labels,
          } satisfies RegisteredLabels,
        ),
      );
    }
    await this.drain();
  }

  /** Every device puts its info and a first heartbeat; resolves when all are acknowledged. */
  async register(): Promise<void> {
    for (let i = 0; i < this.#n; i++) {
      const info: DeviceInfo = {
        deviceId: deviceId(i),
        labels: { ...this.#labelsOf(i), [DEVICE_ID_LABEL]: deviceId(i) },
        inventory: {
          hostname: deviceId(i),
          arch: "arm64",
          os: "linux",
          kernel: "6.6",
          cpuCores: 4,
          memoryMb: 8192,
          agentVersion: "bench",
        },
        updatedAt: new Date().toISOString(),
        instance: instanceOf(i),
      };
      await this.put(i, Buckets.deviceInfo, keys.deviceInfo(info.deviceId), JSON.stringify(info));
      await this.heartbeat(i);
    }
    await this.drain();
  }

  heartbeat(i: number, at = Date.now()): Promise<void> {
    // Each agent process says who it is, as real agents do (the operator tracks it per device).
    const beat: Heartbeat = { deviceId: deviceId(i), at, instance: instanceOf(i) };
    return this.put(
      i,
      Buckets.deviceHeartbeat,
      keys.heartbeat(beat.deviceId),
      JSON.stringify(beat),
    );
  }

  /** The whole fleet but the silenced beats once per period, spread evenly, until `signal`. */
  beat(signal: AbortSignal): Promise<void> {
    const perTick = Math.max(1, Math.ceil(this.#n / (HEARTBEAT_PERIOD_MS / BEAT_TICK_MS)));
    let next = 0;
    return every(BEAT_TICK_MS, signal, async () => {
      for (let k = 0; k < perTick; k++, next = (next + 1) % this.#n) {
        if (!this.silenced.has(next)) await this.heartbeat(next);
      }
    });
  }

  /** Waits for every put's acknowledgement. */
  async drain(): Promise<void> {
    for (const p of this.#pipes) await p.drain();
  }

  /** Puts that failed or had no acknowledgement. */
  get errors(): number {
    return this.#pipes.reduce((s, p) => s + p.errors, 0);
  }

  get firstError(): string | undefined {
    return this.#pipes.find((p) => p.firstError)?.firstError;
  }
}
