/**
 * Mirrors the device registry as cluster-scoped Device objects, like Nodes: spec and labels
 * by server-side apply when a device's info changes, and the `Reachable` condition on
 * heartbeat staleness transitions only. Writes are queued per device (latest wins) and
 * retried, so a slow or restarting API server never blocks the operator.
 */
import { z } from "zod";
import {
  type Condition,
  deviceConflictStatus,
  deviceResource,
  DeviceStatus,
  deviceStatus,
  REACHABLE,
} from "../crd/device_resource.ts";
import {
  API_VERSION,
  canonicalJson,
  type Clock,
  type DeviceInfo,
  type InstanceConflict,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { sleep, untilAborted } from "../adapters/timers.ts";
import { informer, KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import type { DeviceSink } from "./deployment_source.ts";
import { DeviceType, ObjectMeta } from "./kube_resources.ts";
import { OPERATOR_FIELD_MANAGER } from "./kube_source.ts";

const DeviceObject = z.object({
  metadata: ObjectMeta,
  spec: z.unknown().optional(),
  status: DeviceStatus.optional(),
});

interface Pending {
  body?: Record<string, unknown>;
  reachable?: { reachable: boolean; lastSeenMs: number | undefined };
  /** The agent conflict to show; `{}` when it ended. */
  conflict?: { value?: InstanceConflict };
  remove?: boolean;
}

export class KubeDeviceSink implements DeviceSink {
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** deviceId → canonical JSON of the last body applied (or found at start). */
  readonly #applied = new Map<string, { json: string; body: Record<string, unknown> }>();
  /** Status (reachability, agent conflict) waiting for its Device object to be created first. */
  readonly #deferred = new Map<string, Pick<Pending, "reachable" | "conflict">>();
  /** deviceId → status last written (or found at start): each write carries all of it. */
  readonly #statuses = new Map<string, DeviceStatus>();
  readonly #pending = new Map<string, Pending>();
  #wake: (() => void) | undefined;
  /** Writes to the API server, for tests. */
  writes = 0;

  /** @param clock dates the Reachable condition's transitions and times retries @default systemClock */
  constructor(client: KubeClient, log: Logger, clock: Clock = systemClock) {
    this.#client = client;
    this.#log = log.with({ component: "devices" });
    this.#clock = clock;
  }

  /** Reads the Device objects that exist, so unchanged ones are not written again. */
  async load(): Promise<void> {
    const { items } = await this.#client.list(DeviceType);
    for (const item of items) {
      const parsed = DeviceObject.safeParse(item);
      if (!parsed.success) continue;
      const { metadata, spec, status } = parsed.data;
      const body = this.#bodyOf(metadata, spec);
      this.#applied.set(metadata.name, { json: canonicalJson(body), body });
      if (status) this.#statuses.set(metadata.name, status);
    }
  }

  deviceChanged(info: DeviceInfo): void {
    const body: Record<string, unknown> = deviceResource(info);
    if (this.#applied.get(info.deviceId)?.json === canonicalJson(body)) return;
    this.#queue(info.deviceId, { body });
  }

  reachabilityChanged(deviceId: string, reachable: boolean, lastSeenMs: number | undefined): void {
    const previous = this.#reachable(deviceId);
    if (previous && (previous.status === "True") === reachable) return;
    this.#queue(deviceId, { reachable: { reachable, lastSeenMs } });
  }

  agentConflictChanged(deviceId: string, conflict: InstanceConflict | undefined): void {
    this.#queue(deviceId, { conflict: conflict ? { value: conflict } : {} });
  }

  #reachable(deviceId: string): Condition | undefined {
    return this.#statuses.get(deviceId)?.conditions?.find((c) => c.type === REACHABLE);
  }

  deviceRemoved(deviceId: string): void {
    this.#pending.set(deviceId, { remove: true });
    this.#wake?.();
  }

  /** Carries out queued writes until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.#writeLoop(signal), this.#healLoop(signal)]);
  }

  /**
   * A Device object deleted by hand (`kubectl delete fleetdev`) while its device still
   * reports comes back, like a Node whose kubelet is alive.
   */
  async #healLoop(signal: AbortSignal): Promise<void> {
    for await (
      const event of untilAborted(
        informer(this.#client, DeviceType, { signal, logger: this.#log }),
        signal,
      )
    ) {
      if (event.type !== "delete") continue;
      const name = event.object.metadata?.name ?? "";
      const applied = this.#applied.get(name);
      if (!applied || this.#pending.get(name)?.remove) continue;
      this.#applied.delete(name);
      const condition = this.#reachable(name);
      this.#statuses.delete(name);
      this.#log.info(
        `The Device object ${name} was deleted while the device still reports; recreating it`,
      );
      this.#queue(name, { body: applied.body });
      if (condition) {
        this.#defer(name, { reachable: condition.status === "True", lastSeenMs: undefined });
      }
    }
  }

  async #writeLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (this.#pending.size === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        this.#wake = undefined;
        continue;
      }
      const batch = [...this.#pending].slice(0, 16);
      for (const [deviceId] of batch) this.#pending.delete(deviceId);
      const failed = (await Promise.all(batch.map(([id, p]) => this.#write(id, p)))).some((ok) =>
        !ok
      );
      if (failed) await sleep(2000, signal, this.#clock);
    }
  }

  #defer(deviceId: string, reachable: NonNullable<Pending["reachable"]>): void {
    this.#deferred.set(deviceId, { ...this.#deferred.get(deviceId), reachable });
  }

  #queue(deviceId: string, update: Pending): void {
    const pending = this.#pending.get(deviceId) ?? {};
    delete pending.remove;
    this.#pending.set(deviceId, { ...pending, ...update });
    this.#wake?.();
  }

  async #write(deviceId: string, p: Pending): Promise<boolean> {
    try {
      if (p.remove) {
        await this.#client.delete(DeviceType, deviceId);
        this.#applied.delete(deviceId);
        this.#statuses.delete(deviceId);
        this.#deferred.delete(deviceId);
        this.writes++;
        return true;
      }
      if (p.body) {
        await this.#client.apply(DeviceType, p.body, {
          fieldManager: OPERATOR_FIELD_MANAGER,
          force: true,
        });
        this.#applied.set(deviceId, { json: canonicalJson(p.body), body: p.body });
        this.writes++;
        const deferred = this.#deferred.get(deviceId);
        this.#deferred.delete(deviceId);
        if (deferred?.reachable && !p.reachable) p = { ...p, reachable: deferred.reachable };
        if (deferred?.conflict && !p.conflict) p = { ...p, conflict: deferred.conflict };
      }
      if (p.reachable || p.conflict) {
        if (!this.#applied.has(deviceId)) {
          // Its Device object does not exist yet: the status goes right after the spec.
          if (p.reachable) this.#defer(deviceId, p.reachable);
          if (p.conflict) {
            this.#deferred.set(deviceId, { ...this.#deferred.get(deviceId), conflict: p.conflict });
          }
          return true;
        }
        const now = this.#clock.now();
        let status = this.#statuses.get(deviceId);
        if (p.reachable) {
          status = deviceStatus(p.reachable.reachable, p.reachable.lastSeenMs, now, status);
        }
        if (p.conflict) status = deviceConflictStatus(p.conflict.value, now, status);
        await this.#client.applyStatus(DeviceType, {
          apiVersion: API_VERSION,
          kind: "Device",
          metadata: { name: deviceId },
          status,
        }, { fieldManager: OPERATOR_FIELD_MANAGER, force: true });
        if (status) this.#statuses.set(deviceId, status);
        this.writes++;
        if (p.reachable) {
          this.#log.info(
            `Device ${deviceId} is ${
              p.reachable.reachable ? "reachable" : "unreachable"
            } (Device object updated)`,
          );
        }
      }
      return true;
    } catch (error) {
      const applied = this.#applied.get(deviceId);
      if (error instanceof KubeApiError && error.isNotFound() && applied && !p.remove) {
        // Someone deleted the Device object: create it again from what it last held.
        this.#applied.delete(deviceId);
        this.#statuses.delete(deviceId);
        p = { ...p, body: p.body ?? applied.body };
      }
      this.#log.warn(
        `Could not update the Device object ${deviceId}: ${(error as Error).message}; will retry`,
      );
      const again = this.#pending.get(deviceId);
      this.#pending.set(deviceId, { ...p, ...again });
      return false;
    }
  }

  /**
   * The part of an existing object our apply body sets, to compare with what we would write;
   * fleet annotations included, so an object carrying an older operator's `original-labels`
   * is applied again, which removes it.
   */
  #bodyOf(metadata: ObjectMeta, spec: unknown): Record<string, unknown> {
    const annotations = Object.fromEntries(
      Object.entries(metadata.annotations ?? {}).filter(([k]) =>
        k.startsWith("fleet.nationtech.io/")
      ),
    );
    return {
      apiVersion: API_VERSION,
      kind: "Device",
      metadata: {
        name: metadata.name,
        labels: metadata.labels ?? {},
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      },
      spec,
    };
  }
}
