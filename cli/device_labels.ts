/**
 * The label registry as people change it (`fleet device label`, `fleet device enroll`): on the
 * nats source the `device-labels` bucket, on the kube source the `Device` objects' labels. The
 * operator targets on these labels, never on what devices report (issue 12, item 3).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import * as z from "zod";
import {
  BUCKET_HISTORY,
  Buckets,
  canonicalJson,
  DeviceInfo,
  keys,
  type Labels,
  parseJsonWith,
  RegisteredLabels,
  withoutDeviceId,
} from "../core/mod.ts";
import { FleetError } from "../core/errors.ts";
import { ensureBucket, isWrongLastSequence } from "../adapters/nats/mod.ts";
import { KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import { DeviceSpec } from "../crd/device_resource.ts";
import { DeviceType, ObjectMeta } from "../operator/kube_resources.ts";
import { ConcurrentUpdateError } from "./nats_store.ts";
import { CLI_FIELD_MANAGER } from "./kube_store.ts";

/** What an edit did. */
export interface LabelOutcome {
  /** The device's registry labels now (device-id aside). */
  labels: Labels;
  changed: boolean;
}

/** The registry, whichever source holds it. */
export interface DeviceLabelStore {
  /**
   * Replaces the device's registry labels with what `edit` makes of the current ones, as one
   * compare-and-set (retried when someone else wrote in between).
   * @throws whatever `edit` throws, untouched
   */
  edit(deviceId: string, edit: (current: Labels) => Labels): Promise<LabelOutcome>;
  /** The labels the device reports about itself; undefined when it never reported. */
  reported(deviceId: string): Promise<Labels | undefined>;
}

/** There is nothing to label yet (kube: no Device object). */
export class UnknownDeviceError extends FleetError {
  override name = "UnknownDeviceError";
  constructor(message: string) {
    super("usage", message);
  }
}

const ATTEMPTS = 5;

function raced(deviceId: string): ConcurrentUpdateError {
  return new ConcurrentUpdateError(
    `The labels of device ${deviceId} kept changing while they were written; try again`,
  );
}

/** The registry in the `device-labels` bucket. */
export class NatsDeviceLabelStore implements DeviceLabelStore {
  readonly #nc: NatsConnection;
  readonly #replicas: number;
  #kv: Promise<KV> | undefined;

  constructor(nc: NatsConnection, replicas = 1) {
    this.#nc = nc;
    this.#replicas = replicas;
  }

  async edit(deviceId: string, edit: (current: Labels) => Labels): Promise<LabelOutcome> {
    const kv = await this.#bucket();
    const key = keys.deviceLabels(deviceId);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      const exists = entry !== null && entry.operation === "PUT";
      const current = exists
        ? withoutDeviceId(
          parseJsonWith(RegisteredLabels, entry.value, `labels of ${deviceId}`).labels,
        )
        : {};
      const labels = edit(current);
      if (exists && canonicalJson(labels) === canonicalJson(current)) {
        return { labels, changed: false };
      }
      const value = JSON.stringify({ labels } satisfies RegisteredLabels);
      try {
        if (entry === null) await kv.create(key, value);
        else await kv.update(key, value, entry.revision);
        return { labels, changed: true };
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
      }
    }
    throw raced(deviceId);
  }

  async reported(deviceId: string): Promise<Labels | undefined> {
    const kv = await ensureBucket(this.#nc, Buckets.deviceInfo, {
      replicas: this.#replicas,
      history: BUCKET_HISTORY[Buckets.deviceInfo],
    });
    const entry = await kv.get(keys.deviceInfo(deviceId));
    if (entry === null || entry.operation !== "PUT") return undefined;
    return parseJsonWith(DeviceInfo, entry.value, `device info of ${deviceId}`).labels;
  }

  #bucket(): Promise<KV> {
    return this.#kv ??= ensureBucket(this.#nc, Buckets.deviceLabels, {
      replicas: this.#replicas,
      history: BUCKET_HISTORY[Buckets.deviceLabels],
    });
  }
}

const LabelledDevice = z.object({
  metadata: ObjectMeta,
  spec: DeviceSpec.pick({ reportedLabels: true }).optional(),
});

/** The registry as the `Device` objects' labels (kube source). */
export class KubeDeviceLabelStore implements DeviceLabelStore {
  readonly #client: KubeClient;

  constructor(client: KubeClient) {
    this.#client = client;
  }

  async edit(deviceId: string, edit: (current: Labels) => Labels): Promise<LabelOutcome> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const { metadata } = await this.#read(deviceId);
      const current = withoutDeviceId(metadata.labels ?? {});
      const labels = edit(current);
      if (canonicalJson(labels) === canonicalJson(current)) return { labels, changed: false };
      // A merge patch, as kubectl label sends it: null removes a label.
      const patch: Record<string, string | null> = { ...labels };
      for (const key of Object.keys(current)) if (!(key in labels)) patch[key] = null;
      try {
        await this.#client.mergePatch(DeviceType, deviceId, {
          metadata: { labels: patch, resourceVersion: metadata.resourceVersion },
        }, { fieldManager: CLI_FIELD_MANAGER });
        return { labels, changed: true };
      } catch (error) {
        if (!(error instanceof KubeApiError && error.isConflict())) throw error;
      }
    }
    throw raced(deviceId);
  }

  async reported(deviceId: string): Promise<Labels | undefined> {
    return (await this.#read(deviceId)).spec?.reportedLabels ?? {};
  }

  async #read(deviceId: string): Promise<z.infer<typeof LabelledDevice>> {
    const object = await this.#client.get(DeviceType, deviceId);
    if (object === undefined) {
      throw new UnknownDeviceError(
        `There is no Device ${deviceId} in the cluster: the operator creates it once the ` +
          "device's agent reports (see fleet get devices --target kube)",
      );
    }
    return LabelledDevice.parse(object);
  }
}
