/**
 * The device-consumer controller: every known device has the one consumer it reads its
 * desired state from (`core/device_consumer.ts`), which only the control plane creates, so no
 * device chooses where the server delivers (DESIGN.md §5). A new device gets its consumer when
 * its first info arrives, a deleted one (an agent asking to read everything again) is
 * re-created at once, and an audit now and then (and whenever the broker is back) brings back
 * what broker data loss or a restart took and removes the consumers of devices that left. The NATS adapter is `nats_device_consumers.ts`.
 * @module
 */
import type { Clock } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";

/** Where the devices' consumers live. */
export interface DeviceConsumerStore {
  /** Creates the device's consumer unless it exists as it should. */
  ensure(deviceId: string): Promise<void>;
  remove(deviceId: string): Promise<void>;
  /**
   * The devices whose consumer exists.
   * @throws when it cannot tell (the broker cannot be reached, the bucket is gone)
   */
  list(): Promise<Set<string>>;
  /** The devices whose consumer was deleted, as it happens, until `signal` aborts. */
  deletions(signal: AbortSignal): AsyncIterable<string>;
  /**
   * Each time the broker is reached again after it was away, until `signal` aborts: it may
   * have restarted without the consumers (they are kept in its memory).
   */
  reconnects(signal: AbortSignal): AsyncIterable<void>;
}

/** Options of {@link DeviceConsumerKeeper}. */
export interface DeviceConsumerKeeperOptions {
  store: DeviceConsumerStore;
  /** The devices that must have a consumer (the registry's ids: a Map or a Set). */
  devices: { keys(): Iterable<string>; has(deviceId: string): boolean };
  /** Whether {@link devices} is complete (the registry was read once): only then is one removed. */
  complete: () => boolean;
  clock: Clock;
  log: Logger;
  /** How often the consumers are audited. */
  intervalMs: number;
}

/** Consumers created at once; more would only queue up in the broker. */
const CONCURRENCY = 16;

export class DeviceConsumerKeeper {
  readonly #o: DeviceConsumerKeeperOptions;
  /** Devices waiting for their consumer to be ensured. */
  readonly #pending = new Set<string>();
  #draining: Promise<void> | undefined;
  #listProblem = "";

  constructor(options: DeviceConsumerKeeperOptions) {
    this.#o = options;
  }

  /** A device the registry did not have sent its info: its consumer is made now. */
  deviceJoined(deviceId: string): void {
    // Before the registry is read once, the first audit covers every device at once.
    if (!this.#o.complete()) return;
    this.#ensure(deviceId);
  }

  /** A device left the registry: its consumer goes. */
  async deviceLeft(deviceId: string): Promise<void> {
    this.#pending.delete(deviceId);
    try {
      await this.#o.store.remove(deviceId);
    } catch (error) {
      this.#o.log.warn(
        `Could not remove the desired-state consumer of device ${deviceId} (the next audit ` +
          `tries again): ${(error as Error).message}`,
      );
    }
  }

  /** Audits every interval and re-creates deleted consumers until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { store } = this.#o;
    const recreate = (async () => {
      for await (const deviceId of store.deletions(signal)) {
        if (this.#o.devices.has(deviceId)) this.#ensure(deviceId);
      }
    })().catch((error: unknown) => {
      // The audit still brings them back, only later.
      this.#o.log.warn(
        `Cannot follow the deletion of desired-state consumers (${(error as Error).message}); ` +
          `a device that asks to read its desired state again waits for the next audit`,
      );
    });
    const reaudit = (async () => {
      for await (const _ of store.reconnects(signal)) await this.audit();
    })();
    await every(this.#o.intervalMs, signal, () => this.audit(), this.#o.clock);
    await Promise.all([recreate, reaudit]);
    await this.#draining;
  }

  /** Creates the consumers that are missing, removes those of devices that left. */
  async audit(): Promise<void> {
    const { store, log } = this.#o;
    if (!this.#o.complete()) return;
    let present: Set<string>;
    try {
      present = await store.list();
    } catch (error) {
      const problem = `Could not list the desired-state consumers: ${(error as Error).message}`;
      // Said once per cause: a broker out of reach is reported by the connection already.
      if (problem === this.#listProblem) log.debug(problem);
      else log.warn(problem);
      this.#listProblem = problem;
      return;
    }
    this.#listProblem = "";
    let missing = 0;
    for (const deviceId of this.#o.devices.keys()) {
      if (present.delete(deviceId)) continue;
      missing++;
      this.#ensure(deviceId);
    }
    if (missing > 0) log.info(`Creating the desired-state consumers of ${missing} device(s)`);
    // What is left belongs to no known device.
    for (const deviceId of present) await this.deviceLeft(deviceId);
    await this.#draining;
  }

  #ensure(deviceId: string): void {
    this.#pending.add(deviceId);
    this.#draining ??= this.#drain().finally(() => this.#draining = undefined);
  }

  async #drain(): Promise<void> {
    const worker = async () => {
      for (let next = this.#take(); next !== undefined; next = this.#take()) {
        try {
          await this.#o.store.ensure(next);
        } catch (error) {
          this.#o.log.warn(
            `Could not create the desired-state consumer of device ${next} (the next audit ` +
              `tries again): ${(error as Error).message}`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  }

  #take(): string | undefined {
    for (const deviceId of this.#pending) {
      this.#pending.delete(deviceId);
      return deviceId;
    }
    return undefined;
  }
}
