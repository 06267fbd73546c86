import { z } from "zod";
import { identifierSchema } from "./ids.ts";

/** Liveness of one device (value in `device-heartbeat`); `at` in epoch milliseconds. */
export const Heartbeat = z.object({
  deviceId: identifierSchema("device id"),
  at: z.number().int().nonnegative(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;
