import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { HealthStates } from "./service_health.ts";
import { canonicalJson } from "./spec_hash.ts";
import type { DeviceReport, ReportPhase } from "./rollout.ts";

/**
 * Running: every container runs the revision, is healthy (or has no healthcheck) and has stayed
 * so for minReadySeconds. Failed: a crash loop, an unhealthy container, an unrunnable spec.
 */
export const Phases = ["Pending", "Running", "Failed"] as const;
export type Phase = typeof Phases[number];

/** One service of a deployment on a device. */
export const ServiceReport = z.object({
  name: z.string(),
  /** podman's healthcheck status of its container; `none` without a healthcheck. */
  health: z.enum(HealthStates),
  /** Times its container exited since it runs this spec (restarted by podman or the agent). */
  restarts: z.number().int().nonnegative(),
});
export type ServiceReport = z.infer<typeof ServiceReport>;

/** How one deployment is doing on one device (value in `device-state`). */
export const DeploymentState = z.object({
  deviceId: identifierSchema("device id"),
  namespace: identifierSchema("namespace"),
  deployment: identifierSchema("deployment name"),
  generation: z.number().int().nonnegative(),
  phase: z.enum(Phases),
  lastError: z.string().nullable().default(null),
  lastEventAt: z.string(),
  /**
   * The revision the device runs or is moving to: the hash of the desired workload
   * (core/revisions.ts revisionHash). Absent when the desired state could not be read.
   */
  revision: z.string().min(1).optional(),
  /** Per service, in the workload's order; absent when the workload cannot run here. */
  services: z.array(ServiceReport).optional(),
});
export type DeploymentState = z.infer<typeof DeploymentState>;

/** Messages longer than this are cut: lastError is a summary, the journal has the rest. */
export const LAST_ERROR_MAX = 300;

export function shortError(message: string): string {
  const line = message.replace(/\s+/g, " ").trim();
  return line.length <= LAST_ERROR_MAX ? line : `${line.slice(0, LAST_ERROR_MAX - 1)}…`;
}

/**
 * Whether publishing `next` after `previous` says anything new: phase, error, generation,
 * revision, or a service's health or restarts.
 */
export function stateChanged(
  previous: DeploymentState | undefined,
  next: DeploymentState,
): boolean {
  return previous === undefined || previous.phase !== next.phase ||
    previous.lastError !== next.lastError || previous.generation !== next.generation ||
    previous.revision !== next.revision ||
    canonicalJson(previous.services) !== canonicalJson(next.services);
}

const REPORT_PHASES: Record<Phase, ReportPhase> = {
  Pending: "Progressing",
  Running: "Succeeded",
  Failed: "Failed",
};

/**
 * What the rollout controller reads of a device's state: Pending is Progressing, Running is
 * Succeeded, Failed is Failed (lastError its message). Undefined for a state without a revision
 * (an agent older than revisions, or a desired state it could not read).
 * @param at when the control plane received the state (epoch ms), never the device's clock
 */
export function rolloutReportOf(state: DeploymentState, at: number): DeviceReport | undefined {
  if (state.revision === undefined) return undefined;
  return {
    revision: state.revision,
    phase: REPORT_PHASES[state.phase],
    ...(state.phase === "Failed" && state.lastError !== null ? { message: state.lastError } : {}),
    at,
  };
}
