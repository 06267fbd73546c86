/**
 * Mirrors the device registry as cluster-scoped Device objects, like Nodes: spec and the
 * device-id label by server-side apply when a device's info changes (the other labels are
 * people's: the label registry, kube_label_registry.ts), and the `Reachable` condition on
 * heartbeat staleness transitions only. Writes are queued per device (latest wins) and
 * retried, so a slow or restarting API server never blocks the operator.
 */
import * as z from "zod";
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
  DEVICE_ID_LABEL,
  type DeviceInfo,
  formatLabels,
  type InstanceConflict,
  withoutDeviceId,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { sleep, untilAborted } from "../adapters/timers.ts";
import { informer, KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import type { DeviceSink } from "./deployment_source.ts";
import { DeviceType, ObjectMeta } from "./kube_resources.ts";
import { OPERATOR_FIELD_MANAGER } from "./kube_source.ts";

/** Who owns which fields of an object (server-side apply); only what the migration reads. */
const ManagedFields = z.array(z.object({
  manager: z.string().optional(),
  operation: z.string().optional(),
  fieldsV1: z.object({
    "f:metadata": z.object({ "f:labels": z.record(z.string(), z.unknown()).optional() })
      .optional(),
  }).optional(),
}));

const DeviceObject = z.object({
  metadata: ObjectMeta.extend({ managedFields: ManagedFields.optional() }),
  spec: z.unknown().optional(),
  status: DeviceStatus.optional(),
});

/**
 * The field manager under which the operator keeps people's labels it must write itself:
 * those an older operator copied from what devices reported (kept as registry labels when
 * this operator stops applying them), and those of a Device object deleted by hand that it
 * re-creates. People's own changes (`kubectl label`, `fleet device label`) replace or remove
 * them as any other.
 */
export const KEPT_LABELS_FIELD_MANAGER = "fleet-kept-labels";

/**
 * The labels of an object that an older operator applied (copied from what the device
 * reported), device-id aside: on upgrade they would vanish with the operator's next apply.
 */
export function operatorAppliedLabels(
  labels: Readonly<Record<string, string>>,
  managedFields: z.infer<typeof ManagedFields>,
): Record<string, string> {
  const owned = new Set<string>();
  for (const entry of managedFields) {
    if (entry.manager !== OPERATOR_FIELD_MANAGER || entry.operation !== "Apply") continue;
    for (const field of Object.keys(entry.fieldsV1?.["f:metadata"]?.["f:labels"] ?? {})) {
      owned.add(field.replace(/^f:/, ""));
    }
  }
  return Object.fromEntries(
    Object.entries(labels).filter(([key]) => key !== DEVICE_ID_LABEL && owned.has(key)),
  );
}

interface Pending {
  body?: Record<string, unknown>;
  /** People's labels to put back once `body` re-created the object. */
  labels?: Record<string, string>;
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

  /**
   * Reads the Device objects that exist, so unchanged ones are not written again. Labels an
   * older operator copied from what a device reported are handed to
   * {@link KEPT_LABELS_FIELD_MANAGER} first: they stay, as registry labels, so no
   * deployment loses its devices on upgrade; each is logged for a person to check.
   */
  async load(): Promise<void> {
    const { items } = await this.#client.list(DeviceType);
    for (const item of items) {
      const parsed = DeviceObject.safeParse(item);
      if (!parsed.success) continue;
      const { metadata, spec, status } = parsed.data;
      const migrated = operatorAppliedLabels(metadata.labels ?? {}, metadata.managedFields ?? []);
      if (Object.keys(migrated).length > 0) {
        await this.#keepLabels(metadata.name, migrated);
        this.#log.warn(
          `Device ${metadata.name} keeps the labels ${formatLabels(migrated)}, which an older ` +
            "operator copied from what the device reported; they are now the labels targeting " +
            `uses: check them (kubectl label fleetdev ${metadata.name} key-, or fleet device ` +
            "label --target kube)",
          { deviceId: metadata.name },
        );
      }
      const body = this.#bodyOf(metadata, spec);
      this.#applied.set(metadata.name, { json: canonicalJson(body), body });
      if (status) this.#statuses.set(metadata.name, status);
    }
  }

  /**
   * Writes people's `labels` on the Device under {@link KEPT_LABELS_FIELD_MANAGER}; with
   * `body`, in the write that creates the object, so the label registry never sees it without
   * them (applying the labels alone again afterwards lets go of the body's fields).
   */
  async #keepLabels(
    deviceId: string,
    labels: Record<string, string>,
    body?: Record<string, unknown>,
  ): Promise<void> {
    await this.#client.apply(DeviceType, {
      ...body,
      apiVersion: API_VERSION,
      kind: "Device",
      metadata: { name: deviceId, labels },
    }, { fieldManager: KEPT_LABELS_FIELD_MANAGER, force: true });
    this.writes++;
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
      // With its labels: they are the registry, and deleting the object is no relabelling.
      const labels = withoutDeviceId(event.object.metadata?.labels ?? {});
      this.#queue(name, {
        body: applied.body,
        ...(Object.keys(labels).length > 0 ? { labels } : {}),
      });
      if (condition) {
        this.#defer(name, { reachable: condition.status === "True", lastSeenMs: undefined });
      }
    }
  }

  async #writeLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (this.#pending.size === 0) {
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          // A wake takes its abort listener along: one per wait would pile up for the life of
          // the operator.
          this.#wake = () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          };
          signal.addEventListener("abort", onAbort, { once: true });
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
        if (p.labels) await this.#keepLabels(deviceId, p.labels, p.body);
        await this.#client.apply(DeviceType, p.body, {
          fieldManager: OPERATOR_FIELD_MANAGER,
          force: true,
        });
        this.#applied.set(deviceId, { json: canonicalJson(p.body), body: p.body });
        this.writes++;
        if (p.labels) await this.#keepLabels(deviceId, p.labels);
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
   * The part of an existing object our apply body sets, to compare with what we would write
   * (a person's change to the device-id label is applied back);
   * fleet annotations included, so an object carrying an older operator's `original-labels`
   * is applied again, which removes it.
   */
  #bodyOf(metadata: ObjectMeta, spec: unknown): Record<string, unknown> {
    const annotations = Object.fromEntries(
      Object.entries(metadata.annotations ?? {}).filter(([k]) =>
        k.startsWith("fleet.nationtech.io/")
      ),
    );
    // The other labels are people's: the operator's body has only the device-id one.
    const id = metadata.labels?.[DEVICE_ID_LABEL];
    return {
      apiVersion: API_VERSION,
      kind: "Device",
      metadata: {
        name: metadata.name,
        labels: id === undefined ? {} : { [DEVICE_ID_LABEL]: id },
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      },
      spec,
    };
  }
}
