/**
 * What this version of Fleet rolls out. `strategy: Progressive` is a valid spec (its schema,
 * revisions and the rollout's decisions are in core/), but the operator does not run
 * progressive rollouts yet: until it does, such a spec is refused (by `fleet apply`, and by the
 * operator, which keeps the deployment's last accepted generation on its devices) rather than
 * silently rolled out to every device at once, which is what a progressive rollout is asked
 * to prevent. Pure.
 * @module
 */
import type { DeploymentSpec } from "./deployment.ts";

/** Why this version cannot roll `spec` out as it asks, or undefined. */
export function rolloutSupportProblem(spec: DeploymentSpec): string | undefined {
  if (spec.rollout.strategy === "Immediate") return undefined;
  return `rollout.strategy ${spec.rollout.strategy} is not run by this version of Fleet yet: ` +
    `it would reach every device at once; use strategy Immediate for now`;
}
