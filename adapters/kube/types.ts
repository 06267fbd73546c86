/**
 * The shapes the Kubernetes client reads and writes: resource types (where an object
 * lives in the REST API), the object envelope, lists and watch events. Objects stay
 * loosely typed here; callers validate their own `spec`/`status` with zod.
 */

/**
 * Where a kind lives in the REST API. `group` is `""` for the core group (`/api/v1`).
 *
 * @example
 * ```ts
 * const ConfigMaps: ResourceType = {
 *   group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true,
 * };
 * ```
 */
export interface ResourceType {
  /** API group, `""` for core (ConfigMap, Namespace...). */
  group: string;
  /** API version within the group, e.g. `"v1alpha1"`. */
  version: string;
  /** Lowercase plural resource name in URLs, e.g. `"deployments"`. */
  plural: string;
  /** Kind, e.g. `"Deployment"`; filled into `kind` when an object omits it. */
  kind: string;
  /** True for namespaced kinds, false for cluster-scoped ones. */
  namespaced: boolean;
}

/** The subset of `metadata` the adapter reads; every field is optional. */
export interface ObjectMeta {
  name?: string | undefined;
  generateName?: string | undefined;
  namespace?: string | undefined;
  uid?: string | undefined;
  /** Opaque; sent back for optimistic concurrency (stale → 409 Conflict). */
  resourceVersion?: string | undefined;
  generation?: number | undefined;
  creationTimestamp?: string | undefined;
  deletionTimestamp?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  finalizers?: string[] | undefined;
  /** Server-side apply bookkeeping; stripped from objects sent with `apply`. */
  managedFields?: unknown[] | undefined;
}

/** Any Kubernetes object: the envelope every kind shares. */
export interface KubeObject {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  metadata?: ObjectMeta | undefined;
}

/** What {@linkcode KubeClient.list} returns. */
export interface KubeList<T> {
  items: T[];
  /** The list's resourceVersion: start a watch from here to miss nothing. */
  resourceVersion: string;
}

/** Watch event types passed to callers (`ERROR` events are thrown instead). */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

/**
 * One event of a watch. For `BOOKMARK` only `object.metadata.resourceVersion` is
 * meaningful.
 */
export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

/** `apiVersion` of a resource type: `v1` for core, `<group>/<version>` otherwise. */
export function apiVersionOf(type: ResourceType): string {
  return type.group === "" ? type.version : `${type.group}/${type.version}`;
}

/** Core `Namespace` (cluster-scoped). */
export const NamespaceType: ResourceType = {
  group: "",
  version: "v1",
  plural: "namespaces",
  kind: "Namespace",
  namespaced: false,
};

/** Core `ConfigMap`. */
export const ConfigMapType: ResourceType = {
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
};

/** `apiextensions.k8s.io/v1` `CustomResourceDefinition` (cluster-scoped). */
export const CustomResourceDefinitionType: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  plural: "customresourcedefinitions",
  kind: "CustomResourceDefinition",
  namespaced: false,
};
