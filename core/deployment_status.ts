import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { RolloutStatus } from "./rollout_status.ts";

export const LastError = z.object({
  deviceId: z.string(),
  message: z.string(),
  at: z.string(),
});
export type LastError = z.infer<typeof LastError>;

/** How the fleet is doing with one deployment. `pending` includes devices that never reported. */
export const Aggregate = z.object({
  matchedDeviceCount: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  pending: z.number().int().nonnegative(),
  unreachable: z.number().int().nonnegative(),
  lastError: LastError.nullable().default(null),
  /**
   * Why the deployment targets no device whatever the devices' labels: its namespace is bound
   * to none, or its selector is empty without targetAllBoundDevices (core/tenancy.ts).
   */
  targetingProblem: z.string().optional(),
});
export type Aggregate = z.infer<typeof Aggregate>;

/** Status of one deployment (value in `fleet-deployment-status`, `status` of the CR). */
export const DeploymentStatus = z.object({
  namespace: identifierSchema("namespace"),
  name: identifierSchema("deployment name"),
  observedGeneration: z.number().int().nonnegative(),
  aggregate: Aggregate,
  /** A Progressive deployment's rollout (DESIGN.md §9); absent for Immediate ones. */
  rollout: RolloutStatus.optional(),
  updatedAt: z.string(),
});
export type DeploymentStatus = z.infer<typeof DeploymentStatus>;
