/**
 * What the CLI shows and how it reads it: the read models of deployments and devices from
 * NATS ({@link NatsDeploymentStore}) or Kubernetes ({@link KubeDeploymentStore}), and their
 * rendering as tables and YAML. Commands and `fleet demo` use it; the operator does not.
 * @module
 */
export {
  type ApplyOutcome,
  ConcurrentUpdateError,
  type DeploymentRow,
  type DeviceRow,
  type FleetStore,
  NatsDeploymentStore,
} from "./nats_store.ts";
export { CLI_FIELD_MANAGER, KubeDeploymentStore } from "./kube_store.ts";
export { type OutputFormat, OutputFormats, renderDeployments, renderDevices } from "./render.ts";
export { age, renderTable } from "./table.ts";
