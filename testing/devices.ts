/**
 * Devices as tests need them without an agent: the DeviceInfo an agent publishes, a device
 * that registers on NATS and keeps sending heartbeats the way an agent does, and the labels a
 * person gives it in the label registry (nats: the device-labels bucket; kube: its Device).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  BUCKET_HISTORY,
  Buckets,
  DeviceInfo,
  deviceLabels,
  type Heartbeat,
  keys,
  type Labels,
  withoutDeviceId,
} from "../core/mod.ts";
import { ensureBucket } from "../adapters/nats/mod.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";
import { NatsDeviceLabelStore } from "../cli/device_labels.ts";
import { deviceResource } from "../crd/device_resource.ts";
import { DeviceType } from "../operator/kube_resources.ts";

/** The DeviceInfo an agent publishes for `deviceId` (its default label added). */
export function testDeviceInfo(
  deviceId: string,
  labels: Labels = {},
  options: { updatedAt?: Date; arch?: string } = {},
): DeviceInfo {
  return DeviceInfo.parse({
    deviceId,
    labels: deviceLabels(deviceId, labels),
    inventory: {
      hostname: deviceId,
      arch: options.arch ?? "x86_64",
      os: "linux",
      kernel: "6.8.0",
      cpuCores: 1,
      memoryMb: 512,
      agentVersion: "0.0.0-test",
    },
    updatedAt: (options.updatedAt ?? new Date()).toISOString(),
  });
}

/** A person gives the device `labels` in the registry of the nats source (fleet device label). */
export async function labelTestDevice(
  nc: NatsConnection,
  deviceId: string,
  labels: Labels,
): Promise<void> {
  await new NatsDeviceLabelStore(nc).edit(deviceId, () => withoutDeviceId(labels));
}

/**
 * A person creates the device's Device object with `labels` (kube source: its labels are the
 * registry), as `kubectl apply` would; the operator fills in the rest when the device reports.
 */
export async function labelTestDeviceObject(
  client: KubeClient,
  deviceId: string,
  labels: Labels,
): Promise<void> {
  await client.apply(DeviceType, {
    ...deviceResource(testDeviceInfo(deviceId)),
    metadata: { name: deviceId, labels },
  }, { fieldManager: "kubectl", force: true });
}

/**
 * Registers a device on NATS as an agent does (its info, a heartbeat), labelled in the
 * registry with the labels it reports, and sends a heartbeat every `intervalMs` until disposed.
 */
export async function registerTestDevice(
  nc: NatsConnection,
  info: DeviceInfo,
  intervalMs = 1000,
): Promise<Disposable> {
  await labelTestDevice(nc, info.deviceId, info.labels);
  const settings = (bucket: typeof Buckets.deviceInfo | typeof Buckets.deviceHeartbeat) => ({
    replicas: 1,
    history: BUCKET_HISTORY[bucket],
  });
  await (await ensureBucket(nc, Buckets.deviceInfo, settings(Buckets.deviceInfo)))
    .put(keys.deviceInfo(info.deviceId), JSON.stringify(info));
  const beats = await ensureBucket(nc, Buckets.deviceHeartbeat, settings(Buckets.deviceHeartbeat));
  const beat = () =>
    beats.put(
      keys.heartbeat(info.deviceId),
      JSON.stringify({ deviceId: info.deviceId, at: Date.now() } satisfies Heartbeat),
    );
  await beat();
  const timer = setInterval(() => void beat().catch(() => {}), intervalMs);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}
