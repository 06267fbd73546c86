import { z } from "zod";
import { identifierSchema } from "./ids.ts";
import { LabelKey, type Labels } from "./selector.ts";

/** Label every device carries, so a selector can name one device. */
export const DEVICE_ID_LABEL = "fleet.nationtech.io/device-id";

export const Inventory = z.object({
  hostname: z.string(),
  arch: z.string(),
  os: z.string(),
  kernel: z.string(),
  cpuCores: z.number().int().nonnegative(),
  memoryMb: z.number().int().nonnegative(),
  agentVersion: z.string(),
});
export type Inventory = z.infer<typeof Inventory>;

/** Longest device label value accepted; a label is a short tag, not a document. */
export const DEVICE_LABEL_VALUE_MAX = 256;

/**
 * A device's labels: keys follow the Kubernetes rule (selectors name them), values are
 * free text such as "Building 4, Room 12" (the kube source sanitizes them for Device objects).
 */
export const DeviceLabels = z.record(
  LabelKey,
  z.string().max(
    DEVICE_LABEL_VALUE_MAX,
    `label values are at most ${DEVICE_LABEL_VALUE_MAX} characters`,
  )
    .regex(/^[^\p{Cc}]*$/u, "label values must not contain control characters"),
);
export type DeviceLabels = z.infer<typeof DeviceLabels>;

/** What an agent says about its device (value in `device-info`). */
export const DeviceInfo = z.object({
  deviceId: identifierSchema("device id"),
  labels: DeviceLabels,
  inventory: Inventory,
  updatedAt: z.string(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

/** Config labels plus the device-id label, which always wins. */
export function deviceLabels(deviceId: string, configured: Readonly<Labels>): Labels {
  return { ...configured, [DEVICE_ID_LABEL]: deviceId };
}
