/**
 * Devices as tests need them without an agent: the DeviceInfo an agent publishes, and a
 * device that registers on NATS and keeps sending heartbeats the way an agent does.
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
} from "../core/mod.ts";
import { ensureBucket } from "../adapters/nats/mod.ts";

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

/**
 * Registers a device on NATS as an agent does (its info, a heartbeat) and sends a heartbeat
 * every `intervalMs` until disposed.
 */
export async function registerTestDevice(
  nc: NatsConnection,
  info: DeviceInfo,
  intervalMs = 1000,
): Promise<Disposable> {
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
