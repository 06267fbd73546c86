/** The Kubernetes resource types the kube source reads and writes. */
import * as z from "zod";
import { API_GROUP, DeploymentSpec, describeIssues } from "../core/mod.ts";
import type { ResourceType } from "../adapters/kube/mod.ts";
import { DeploymentResourceStatus } from "../crd/deployment_resource.ts";

const VERSION = "v1alpha1";

export const DeploymentType: ResourceType = {
  group: API_GROUP,
  version: VERSION,
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};

export const DeviceType: ResourceType = {
  group: API_GROUP,
  version: VERSION,
  plural: "devices",
  kind: "Device",
  namespaced: false,
};

export const LeaseType: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
};

export const CrdType: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  plural: "customresourcedefinitions",
  kind: "CustomResourceDefinition",
  namespaced: false,
};

/** Added to every Deployment the operator has seen: its desired state goes before the CR does. */
export const FINALIZER = `${API_GROUP}/finalizer`;

export const ObjectMeta = z.object({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  finalizers: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

/**
 * A Deployment custom resource as the API server returns it, its spec and status read apart
 * ({@link readSpec}, {@link statusOf}): the CRD schema cannot express every rule of core's
 * DeploymentSpec, so a stored CR may hold a spec the operator refuses, and it must still be
 * named, reported on and deleted.
 */
export const DeploymentObject = z.object({
  apiVersion: z.string(),
  kind: z.literal("Deployment"),
  metadata: ObjectMeta,
  spec: z.unknown(),
  status: z.unknown().optional(),
});
export type DeploymentObject = z.infer<typeof DeploymentObject>;

const SpecOf = z.object({ spec: DeploymentSpec });

/**
 * The CR's spec as core reads it (defaults filled in), or why core refuses it, each problem
 * naming its field as kubectl does (`spec.score.data.services[0].env[0].value: ...`).
 */
export function readSpec(
  object: DeploymentObject,
): { spec: DeploymentSpec; problems?: undefined } | { spec?: undefined; problems: string } {
  const parsed = SpecOf.safeParse({ spec: object.spec });
  if (!parsed.success) return { problems: describeIssues(parsed.error) };
  return { spec: parsed.data.spec };
}

/** The CR's status; undefined when absent or unreadable (it is then written anew). */
export function statusOf(object: DeploymentObject): DeploymentResourceStatus | undefined {
  return object.status === undefined
    ? undefined
    : DeploymentResourceStatus.safeParse(object.status).data;
}
