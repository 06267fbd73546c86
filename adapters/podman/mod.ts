/**
 * The Podman adapter: a libpod REST client over the Podman unix socket, its typed errors
 * and types, plus helpers for tests and `fleet demo` (a private Podman service and a local
 * test image).
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
  PodmanClient,
  type PodmanClientOptions,
  type PodmanVersion,
} from "./client.ts";
export { PodmanError, type PodmanErrorInit, PodmanUnavailableError } from "./errors.ts";
export {
  type PodmanService,
  type PodmanServiceOptions,
  startPodmanService,
} from "./service_process.ts";
export { tarArchive, type TarFile } from "./tar.ts";
export { ensureTestImage, TEST_IMAGE_REPOSITORY } from "./test_image.ts";
export {
  type ContainerCreateSpec,
  ContainerCreateSpecSchema,
  type InspectedContainer,
  InspectedContainerSchema,
  type InspectedImage,
  InspectedImageSchema,
  type ObservedContainer,
  ObservedContainerSchema,
  type PortMapping,
  PortMappingSchema,
  type RestartPolicy,
  RestartPolicySchema,
  type VolumeMount,
  VolumeMountSchema,
} from "./types.ts";
