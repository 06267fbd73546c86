import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { InstanceId } from "./agent_instances.ts";

/**
 * Liveness of one device (value in `device-heartbeat`); `at` in epoch milliseconds on the
 * device's clock (informative only). `instance` tells two agents running as one device apart;
 * older agents leave it out.
 */
export const Heartbeat = z.object({
  deviceId: identifierSchema("device id"),
  at: z.number().int().nonnegative(),
  instance: InstanceId.optional(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;
