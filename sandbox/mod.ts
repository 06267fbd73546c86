/**
 * A whole fleet on one machine for `fleet demo` (and the end-to-end tests built on it): a
 * nats-server, a private podman service with a locally built image, the operator and agents.
 * @module
 */
export {
  type DeviceSpec,
  type FleetIdentities,
  type Intervals,
  LocalFleet,
  type LocalFleetOptions,
  type LocalNatsCluster,
  QUICK_INTERVALS,
  type RunningAgent,
} from "./local_fleet.ts";
export {
  DEMO_DEVICES,
  DemoInterrupted,
  DemoStory,
  helloDeployment,
  type StepResult,
} from "./demo.ts";
export { singleServiceDeployment } from "./deployments.ts";
export { ensureTestImage, TEST_IMAGE_REPOSITORY } from "./local_image.ts";
export {
  NATS_SERVER_BIN_ENV,
  type NatsServer,
  NatsServerError,
  type NatsServerOptions,
  startNatsServer,
} from "./nats_server.ts";
export {
  type PodmanService,
  type PodmanServiceOptions,
  startPodmanService,
} from "./podman_service.ts";
