/**
 * `fleet apply` looks ahead at what a workload asks of its devices: each device's policy
 * (the agent's `[policy]` table) decides, and apply cannot read them, so it refuses only what
 * no packaged device runs and warns of what the default policy refuses.
 * @module
 */
import { type Deployment, foreseePolicyRefusals, rolloutWarnings } from "../core/mod.ts";
import { UsageError } from "../core/errors.ts";
import type { Logger } from "../adapters/logger.ts";

/**
 * Warns on the log of every rule the default device policy would break.
 * @throws {UsageError} naming every rule no device's policy can lift.
 */
export function checkWorkloadPolicy(deployment: Deployment, log: Logger): void {
  const { namespace, name } = deployment.metadata;
  const { errors, warnings } = foreseePolicyRefusals(deployment.spec.score);
  if (errors.length > 0) {
    throw new UsageError(
      `deployment ${namespace}/${name} refused: no device would run it: ${errors.join("; ")}`,
    );
  }
  for (const warning of warnings) {
    log.warn(
      `deployment ${namespace}/${name}: a device with the default policy will report it Failed ` +
        `unless its agent config allows it: ${warning}`,
    );
  }
}

/** Warns on the log of a rollout policy whose small batches make its threshold 100 %. */
export function warnOfRolloutPolicy(deployment: Deployment, log: Logger): void {
  const { namespace, name } = deployment.metadata;
  for (const warning of rolloutWarnings(deployment.spec.rollout)) {
    log.warn(`deployment ${namespace}/${name}: ${warning}`);
  }
}
