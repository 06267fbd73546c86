/** The Kubernetes resource types the kube source reads and writes. */
import { z } from "zod";
import { Aggregate, API_GROUP, DeploymentSpec } from "../core/mod.ts";
import type { ResourceType } from "../adapters/kube/mod.ts";

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

/** A Deployment custom resource as the API server returns it. */
export const DeploymentObject = z.object({
  apiVersion: z.string(),
  kind: z.literal("Deployment"),
  metadata: ObjectMeta,
  spec: DeploymentSpec,
  status: z.object({
    observedGeneration: z.number().int().optional(),
    aggregate: Aggregate.optional(),
  }).optional(),
});
export type DeploymentObject = z.infer<typeof DeploymentObject>;
