import { z } from "zod";
import { identifierSchema } from "./ids.ts";
import { Labels } from "./selector.ts";

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

/** What an agent says about its device (value in `device-info`). */
export const DeviceInfo = z.object({
  deviceId: identifierSchema("device id"),
  labels: Labels,
  inventory: Inventory,
  updatedAt: z.string(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

/** Config labels plus the device-id label, which always wins. */
export function deviceLabels(deviceId: string, configured: Readonly<Labels>): Labels {
  return { ...configured, [DEVICE_ID_LABEL]: deviceId };
}
