import { z } from "zod";
import { identifierSchema } from "./ids.ts";

export const Phases = ["Pending", "Running", "Failed"] as const;
export type Phase = typeof Phases[number];

/** How one deployment is doing on one device (value in `device-state`). */
export const DeploymentState = z.object({
  deviceId: identifierSchema("device id"),
  namespace: identifierSchema("namespace"),
  deployment: identifierSchema("deployment name"),
  generation: z.number().int().nonnegative(),
  phase: z.enum(Phases),
  lastError: z.string().nullable().default(null),
  lastEventAt: z.string(),
});
export type DeploymentState = z.infer<typeof DeploymentState>;

/** Messages longer than this are cut: lastError is a summary, the journal has the rest. */
export const LAST_ERROR_MAX = 300;

export function shortError(message: string): string {
  const line = message.replace(/\s+/g, " ").trim();
  return line.length <= LAST_ERROR_MAX ? line : `${line.slice(0, LAST_ERROR_MAX - 1)}…`;
}

/** Whether publishing `next` after `previous` says anything new (phase, error or generation). */
export function stateChanged(
  previous: DeploymentState | undefined,
  next: DeploymentState,
): boolean {
  return previous === undefined || previous.phase !== next.phase ||
    previous.lastError !== next.lastError || previous.generation !== next.generation;
}
