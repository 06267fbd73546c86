/**
 * The Kubernetes adapter: our own thin REST client on `fetch` (get, list, watch with
 * bookmarks, server-side apply, merge patch, create, replace, delete), kubeconfig and
 * in-cluster loading, typed errors and a restart- and 410-proof informer. The real
 * kube-apiserver + etcd that tests run is in `testing/kube_apiserver.ts`.
 *
 * It deliberately does not use kubernetes-fluent-client (DESIGN §7): see client.ts.
 * Import this module lazily: the agent path never needs it.
 *
 * @example
 * ```ts
 * import { ConfigMapType, informer, KubeClient, loadKubeConfig } from "./adapters/kube/mod.ts";
 *
 * using client = new KubeClient(await loadKubeConfig());
 * for await (const event of informer(client, ConfigMapType, { signal, logger })) {
 *   if (event.type === "ready") console.log("seen everything");
 * }
 * ```
 *
 * @module
 */

export {
  type ApplyOptions,
  type DeleteOptions,
  KubeClient,
  type KubeClientOptions,
  type ListOptions,
  type MergePatchOptions,
  resourcePath,
  type WatchOptions,
  type WriteOptions,
} from "./client.ts";
export {
  KubeApiError,
  type KubeApiErrorInit,
  KubeConfigError,
  KubeError,
  KubeGoneError,
  type KubeStatus,
  KubeUnavailableError,
} from "./errors.ts";
export {
  informer,
  type InformerChange,
  type InformerEvent,
  type InformerOptions,
  objectKey,
  relistChanges,
} from "./informer.ts";
export {
  type KubeConfig,
  loadKubeConfig,
  type LoadKubeConfigOptions,
  SERVICE_ACCOUNT_DIR,
} from "./kubeconfig.ts";
export {
  apiVersionOf,
  ConfigMapType,
  CustomResourceDefinitionType,
  type KubeList,
  type KubeObject,
  NamespaceType,
  type ObjectMeta,
  type ResourceType,
  type WatchEvent,
  type WatchEventType,
} from "./types.ts";
