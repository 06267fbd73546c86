import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { isEmptySelector, Labels, LabelSelector } from "./selector.ts";
import { Score, ScoreEnvelope } from "./score.ts";
import { canonicalJson } from "./spec_hash.ts";
import { parseStrictWith } from "./strict.ts";
import { WireFormatError } from "./errors.ts";
import { Rollout } from "./rollout_policy.ts";

export { Rollout };

export const API_GROUP = "fleet.nationtech.io";
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const DEFAULT_NAMESPACE = "default";

/** What a user declares: which devices, what they run, how it rolls out. */
export const DeploymentSpec = z.object({
  targetSelector: LabelSelector,
  /**
   * Says that an empty targetSelector means it: every device bound to the namespace. Without
   * it an empty selector targets nothing (a forgotten selector must not reach every device).
   */
  targetAllBoundDevices: z.boolean().optional(),
  score: Score,
  rollout: Rollout.default({ strategy: "Immediate" }),
  /**
   * How long a device's containers must run healthy before its deployment counts as
   * Succeeded. Not part of the workload: changing it makes no new revision.
   */
  minReadySeconds: z.number().int().nonnegative().optional(),
});
export type DeploymentSpec = z.infer<typeof DeploymentSpec>;

/** The refusal of an empty targetSelector, for whoever applies one (`fleet apply`, the CRD). */
export const EMPTY_SELECTOR_RULE =
  "spec.targetSelector is empty: a deployment names the devices it targets; to target every " +
  "device bound to its namespace, set spec.targetAllBoundDevices: true";

/**
 * Why a spec a person wrote is refused for its selector, or undefined. The wire schema takes an
 * empty selector (the operator targets nothing with it and says why); a person is told at once.
 */
export function emptySelectorProblem(spec: DeploymentSpec): string | undefined {
  return isEmptySelector(spec.targetSelector) && spec.targetAllBoundDevices !== true
    ? EMPTY_SELECTOR_RULE
    : undefined;
}

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

/**
 * The Kubernetes object metadata a file may carry beside Fleet's own (a file saved with
 * `kubectl get -o yaml` has them): accepted, and not applied.
 */
const KubernetesObjectMeta = {
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generateName: z.string().optional(),
  selfLink: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  deletionGracePeriodSeconds: z.number().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(z.unknown()).optional(),
  managedFields: z.array(z.unknown()).optional(),
};

/**
 * A Deployment as a person writes it (a file for `fleet apply -f`): the Deployment, plus what
 * a Kubernetes object may also hold, `status` (the operator's, ignored on apply as kubectl
 * does) and the metadata above. Parse it with parseDeploymentManifest, which is strict.
 */
export const DeploymentManifest = Deployment.extend({
  metadata: DeploymentMetadata.extend(KubernetesObjectMeta),
  status: z.unknown().optional(),
});

/**
 * The Deployment a person wrote, checked strictly: a field the schema does not know (a typo
 * such as `restartPolicyy`) is refused with its path, as kubectl's strict field validation
 * does; the extra Kubernetes metadata and `status` are accepted and dropped.
 * @throws WireFormatError naming `what` and each problem's path
 */
export function parseDeploymentManifest(input: unknown, what: string): Deployment {
  const other = notADeployment(input);
  if (other !== undefined) throw new WireFormatError(what, other);
  const deployment = Deployment.parse(parseStrictWith(DeploymentManifest, input, what));
  const problem = emptySelectorProblem(deployment.spec);
  if (problem !== undefined) throw new WireFormatError(what, problem);
  return deployment;
}

/** Why `input` is some other object than a Fleet Deployment, naming its kind; or undefined. */
function notADeployment(input: unknown): string | undefined {
  const wanted = `fleet apply takes only kind Deployment of apiVersion ${API_VERSION}`;
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return `not an object but ${Array.isArray(input) ? "a list" : `a ${typeof input}`}: ${wanted}`;
  }
  const { kind, apiVersion } = input as { kind?: unknown; apiVersion?: unknown };
  if (kind === undefined) return `kind is missing: ${wanted}`;
  if (kind !== "Deployment") return `kind ${JSON.stringify(kind)}: ${wanted}`;
  if (typeof apiVersion === "string" && apiVersion !== API_VERSION) {
    const which = apiVersion.startsWith(`${API_GROUP}/`)
      ? "a version of Fleet's Deployment this fleet does not know"
      : "not Fleet's Deployment (apps/v1 is Kubernetes' own)";
    return `apiVersion ${JSON.stringify(apiVersion)} is ${which}: ${wanted}`;
  }
  return undefined;
}

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
  /** The deployment's spec.minReadySeconds; absent when it has none (the agent's own applies). */
  minReadySeconds: z.number().int().nonnegative().optional(),
  /**
   * How often a person retried this device's rollout (`fleet rollout retry`): a new value makes
   * the agent try a failing deployment again now, not after its failure backoff.
   */
  retry: z.number().int().positive().optional(),
});
export type DesiredState = z.infer<typeof DesiredState>;

/** The desired state a deployment asks of each device it targets. */
export function desiredStateOf(deployment: StoredDeployment): DesiredState {
  return {
    namespace: deployment.metadata.namespace,
    name: deployment.metadata.name,
    generation: deployment.metadata.generation,
    score: deployment.spec.score,
    ...(deployment.spec.minReadySeconds === undefined
      ? {}
      : { minReadySeconds: deployment.spec.minReadySeconds }),
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
