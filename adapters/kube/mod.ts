/**
 * The Kubernetes adapter: our own thin REST client on `fetch` (get, list, watch with
 * bookmarks, server-side apply, merge patch, create, replace, delete), kubeconfig and
 * in-cluster loading, typed errors, a restart- and 410-proof informer, and a real
 * kube-apiserver + etcd for tests.
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
  ADMIN_TEST_USER,
  KUBE_BIN_DIR_ENV,
  type KubeApiServer,
  KubeApiServerError,
  type KubeApiServerOptions,
  kubeBinDir,
  OPERATOR_TEST_USER,
  startKubeApiServer,
} from "./apiserver_process.ts";
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
