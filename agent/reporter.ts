/**
 * What the agent tells the control plane: its DeviceInfo, each deployment's state (only
 * when something changed), and a heartbeat. Reports that could not be delivered stay
 * pending and go out on the next sync, so nothing is lost while NATS is away.
 */
import {
  type Assessment,
  type DeploymentRef,
  type DeploymentState,
  type DeviceInfo,
  type Heartbeat,
  keys,
  parseKey,
  refKey,
  shortError,
  stateChanged,
} from "../core/mod.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../adapters/logger.ts";

/** Where reports go; the NATS KV sink is the real one. */
export interface ReportSink {
  putDeviceInfo(key: string, info: DeviceInfo): Promise<void>;
  putState(key: string, state: DeploymentState): Promise<void>;
  deleteState(key: string): Promise<void>;
  putHeartbeat(key: string, heartbeat: Heartbeat): Promise<void>;
}

export class Reporter {
  readonly #deviceId: string;
  readonly #instance: string;
  readonly #sink: ReportSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  #info: DeviceInfo;
  #infoPublished = false;
  /** refKey → current state. */
  readonly #current = new Map<string, DeploymentState>();
  /** refKey → state last delivered. */
  readonly #published = new Map<string, DeploymentState>();
  /** refKeys whose state key must be deleted. */
  readonly #forgotten = new Set<string>();
  #failing = false;
  #syncing: Promise<boolean> | undefined;
  /** Set by republishAll(), so a sync that was under way makes another pass. */
  #republishRequested = false;
  /** While another agent owns the device: nothing but heartbeats goes out. */
  #standby = false;

  constructor(options: {
    deviceId: string;
    /** This agent process's instance id, in every heartbeat. */
    instance: string;
    info: DeviceInfo;
    sink: ReportSink;
    log: Logger;
    /**
     * Stamps `lastEventAt`, `updatedAt` and the heartbeat's `at`: the device's own time,
     * informative only; the control plane judges liveness by the broker's clock (DESIGN §9).
     */
    clock: Clock;
  }) {
    this.#deviceId = options.deviceId;
    this.#instance = options.instance;
    this.#info = options.info;
    this.#sink = options.sink;
    this.#log = options.log;
    this.#clock = options.clock;
  }

  /** Records how a deployment is doing; returns whether that is news. */
  assess(a: Assessment): boolean {
    const key = refKey(a.ref);
    const previous = this.#current.get(key);
    const next: DeploymentState = {
      deviceId: this.#deviceId,
      namespace: a.ref.namespace,
      deployment: a.ref.name,
      generation: a.generation,
      phase: a.phase,
      lastError: a.error === null ? null : shortError(a.error),
      lastEventAt: new Date(this.#clock.now()).toISOString(),
      ...(a.revision === undefined ? {} : { revision: a.revision }),
      ...(a.services === undefined ? {} : { services: a.services }),
    };
    this.#forgotten.delete(key);
    if (!stateChanged(previous, next)) return false;
    this.#current.set(key, next);
    const where = `${a.ref.namespace}/${a.ref.name}`;
    if (next.phase === "Failed") {
      this.#log.warn(`Deployment ${where} failed: ${next.lastError ?? "unknown error"}`, {
        generation: next.generation,
      });
    } else {
      this.#log.info(`Deployment ${where} is ${next.phase.toLowerCase()}`, {
        generation: next.generation,
      });
    }
    return true;
  }

  /** The deployment left this device: its state key goes too. */
  forget(ref: string): void {
    if (!this.#current.has(ref) && !this.#published.has(ref)) return;
    this.#current.delete(ref);
    this.#forgotten.add(ref);
  }

  /** States for the deployments currently assessed, for tests and `status`. */
  states(): ReadonlyMap<string, DeploymentState> {
    return this.#current;
  }

  /** Forces DeviceInfo and every state out again (after a reconnect, or periodically). */
  republishAll(): void {
    this.#infoPublished = false;
    this.#published.clear();
    this.#republishRequested = true;
  }

  updateInfo(info: DeviceInfo): void {
    this.#info = info;
    this.#infoPublished = false;
  }

  /**
   * Holds every report but the heartbeat while another agent owns the device (`on`), and
   * sends everything again when this agent takes over.
   */
  standBy(on: boolean): void {
    this.#standby = on;
    if (!on) this.republishAll();
  }

  /** Delivers whatever is pending; true when everything went out. Concurrent calls share one run. */
  sync(): Promise<boolean> {
    this.#syncing ??= this.#sync().finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  async heartbeat(): Promise<void> {
    const hb: Heartbeat = {
      deviceId: this.#deviceId,
      at: this.#clock.now(),
      instance: this.#instance,
    };
    await this.#deliver(() => this.#sink.putHeartbeat(keys.heartbeat(this.#deviceId), hb));
  }

  async #sync(): Promise<boolean> {
    // A republish requested mid-pass (e.g. by the recovery of delivery) would otherwise
    // leave DeviceInfo and the states already passed for the next sync.
    let ok: boolean;
    do {
      this.#republishRequested = false;
      ok = await this.#syncOnce();
    } while (ok && this.#republishRequested);
    return ok;
  }

  async #syncOnce(): Promise<boolean> {
    if (this.#standby) return true;
    let ok = true;
    if (!this.#infoPublished) {
      const info = { ...this.#info, updatedAt: new Date(this.#clock.now()).toISOString() };
      if (
        await this.#deliver(() => this.#sink.putDeviceInfo(keys.deviceInfo(this.#deviceId), info))
      ) {
        this.#infoPublished = true;
      } else ok = false;
    }
    for (const [key, state] of this.#current) {
      const published = this.#published.get(key);
      if (published !== undefined && !stateChanged(published, state)) continue;
      const ref = parseKey.deployment(key) as DeploymentRef;
      if (
        await this.#deliver(() => this.#sink.putState(keys.deviceState(this.#deviceId, ref), state))
      ) {
        this.#published.set(key, state);
      } else ok = false;
    }
    for (const key of [...this.#forgotten]) {
      const ref = parseKey.deployment(key) as DeploymentRef;
      if (
        await this.#deliver(() => this.#sink.deleteState(keys.deviceState(this.#deviceId, ref)))
      ) {
        this.#forgotten.delete(key);
        this.#published.delete(key);
      } else ok = false;
    }
    return ok;
  }

  /** Runs one delivery; logs the first failure of a streak and the recovery, not every try. */
  async #deliver(send: () => Promise<void>): Promise<boolean> {
    try {
      await send();
      if (this.#failing) {
        this.#failing = false;
        this.#log.info("Reports reach NATS again; sending everything that was pending");
        this.republishAll();
      }
      return true;
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true;
        this.#log.warn(
          `Could not send reports to NATS (${(error as Error).message}); keeping them and retrying`,
        );
      } else {
        this.#log.debug("Report delivery still failing", { error });
      }
      return false;
    }
  }
}
