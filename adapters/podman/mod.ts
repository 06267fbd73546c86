/**
 * The Podman adapter: a libpod REST client over the Podman unix socket, its typed errors
 * and types. The private Podman service and the local test image that tests and
 * `fleet demo` use live in `sandbox/`.
 *
 * @example
 * ```ts
 * import { PodmanClient } from "./adapters/podman/mod.ts";
 *
 * using podman = new PodmanClient({ socketPath: "/run/podman/podman.sock" });
 * await podman.ping();
 * ```
 *
 * @module
 */

export {
  type BuildImageOptions,
  type ExecSpec,
  HOST_ROOT,
  PodmanClient,
  type PodmanClientOptions,
  type PodmanVersion,
} from "./client.ts";
export { PodmanError, type PodmanErrorInit, PodmanUnavailableError } from "./errors.ts";
export { type ExecStream } from "./exec_stream.ts";
export { tarArchive, type TarFile } from "./tar.ts";
export {
  type ContainerCreateSpec,
  ContainerCreateSpecSchema,
  type ContainerGrants,
  ContainerGrantsSchema,
  type ContainerHealth,
  ContainerHealthSchema,
  type ContainerLimits,
  ContainerLimitsSchema,
  type HealthcheckSpec,
  HealthcheckSpecSchema,
  type InspectedContainer,
  InspectedContainerSchema,
  type InspectedImage,
  InspectedImageSchema,
  type ManifestListEntry,
  ManifestListEntrySchema,
  type ObservedContainer,
  ObservedContainerSchema,
  type PortMapping,
  PortMappingSchema,
  type PublishedPort,
  PublishedPortSchema,
  type RestartPolicy,
  RestartPolicySchema,
  type VolumeMount,
  VolumeMountSchema,
} from "./types.ts";
