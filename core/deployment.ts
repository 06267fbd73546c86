import { z } from "zod";
import { identifierSchema } from "./ids.ts";
import { Labels, LabelSelector } from "./selector.ts";
import { Score, ScoreEnvelope } from "./score.ts";
import { canonicalJson } from "./spec_hash.ts";

export const API_GROUP = "fleet.nationtech.io";
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const DEFAULT_NAMESPACE = "default";

/** Rollout strategies; only Immediate exists today, the object leaves room for more. */
export const Rollout = z.object({ strategy: z.enum(["Immediate"]).default("Immediate") });

/** What a user declares: which devices, what they run, how it rolls out. */
export const DeploymentSpec = z.object({
  targetSelector: LabelSelector,
  score: Score,
  rollout: Rollout.default({ strategy: "Immediate" }),
});
export type DeploymentSpec = z.infer<typeof DeploymentSpec>;

export const DeploymentMetadata = z.object({
  name: identifierSchema("deployment name"),
  namespace: identifierSchema("namespace").default(DEFAULT_NAMESPACE),
  labels: Labels.optional(),
  generation: z.number().int().positive().optional(),
  creationTimestamp: z.string().optional(),
});

/**
 * The Deployment object, the same shape for `kubectl apply` and `fleet apply -f`; in the
 * nats source it is stored as-is in `fleet-deployments` with `metadata.generation` set.
 */
export const Deployment = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("Deployment"),
  metadata: DeploymentMetadata,
  spec: DeploymentSpec,
});
export type Deployment = z.infer<typeof Deployment>;

/** A Deployment as stored by the operator's source: generation always known. */
export type StoredDeployment = Deployment & {
  metadata: Deployment["metadata"] & { generation: number };
};

/** What one device must run for one deployment (value in `desired-state`). */
export const DesiredState = z.object({
  namespace: identifierSchema("namespace"),
  name: identifierSchema("deployment name"),
  generation: z.number().int().nonnegative(),
  score: ScoreEnvelope,
});
export type DesiredState = z.infer<typeof DesiredState>;

/** The desired state a deployment asks of each device it targets. */
export function desiredStateOf(deployment: StoredDeployment): DesiredState {
  return {
    namespace: deployment.metadata.namespace,
    name: deployment.metadata.name,
    generation: deployment.metadata.generation,
    score: deployment.spec.score,
  };
}

/**
 * The generation to store for `next`, given what is stored now: unchanged spec keeps the
 * generation (a re-apply is a no-op), a changed spec increments it, a new deployment gets 1.
 */
export function nextGeneration(stored: StoredDeployment | undefined, next: Deployment): number {
  if (!stored) return 1;
  return canonicalJson(stored.spec) === canonicalJson(next.spec)
    ? stored.metadata.generation
    : stored.metadata.generation + 1;
}
