/**
 * The operator: {@link createOperator} — the one way to build one — and the ports it works
 * through (deployment source, desired-state store, report feed, bucket keeper, device sink),
 * the deployment sources and the Device mirror; the Kubernetes resources, CRD installation,
 * leader election, the Helm chart and the operator image. Its controllers are internal.
 * @module
 */
export {
  createOperator,
  type Operator,
  type OperatorOptions,
  type OperatorSource,
} from "./operator.ts";
export type { OperatorStats } from "./operator_stats.ts";
export { type OperatorMetricsSource, registerOperatorMetrics } from "./operator_metrics.ts";
export { OperatorHealth } from "./operator_health.ts";
export type { DeploymentSource, DeviceSink, SourceEvent } from "./deployment_source.ts";
export type { DesiredStateEvent, DesiredStateStore } from "./desired_state_store.ts";
export type {
  DeviceInfoEvent,
  DeviceStateEvent,
  FeedMark,
  HeartbeatEvent,
  ReportFeed,
} from "./report_feed.ts";
export type { BucketKeeper } from "./bucket_keeper.ts";
export { DeploymentMap, DeploymentSet } from "./deployment_map.ts";
export { FleetView } from "./fleet_view.ts";
export { NatsDeploymentSource, parseStoredDeployment } from "./nats_source.ts";
export { KubeDeploymentSource, OPERATOR_FIELD_MANAGER } from "./kube_source.ts";
export { KubeDeviceSink } from "./kube_devices.ts";
export {
  CrdType,
  DeploymentObject,
  DeploymentType,
  DeviceType,
  FINALIZER,
  LeaseType,
  ObjectMeta,
} from "./kube_resources.ts";
export { CrdInstallError, installCrds, INSTALLER_FIELD_MANAGER } from "./kube_install.ts";
export {
  type ElectionOutcome,
  type ElectionTimings,
  electionTimings,
  LeaderElectionConfigError,
  type LeaderElectionOptions,
  runAsLeader,
} from "./leader_election.ts";
export {
  type LeaseStore,
  LeaseStoreError,
  type LeaseWrite,
  type StoredLease,
} from "./lease_store.ts";
export { type KubeLeaseOptions, KubeLeaseStore, OPERATOR_LEASE_NAME } from "./kube_lease.ts";
export { type NatsLeaseOptions, NatsLeaseStore } from "./nats_lease.ts";
export {
  HELM_CHART_NAME,
  HELM_KEEP_ANNOTATION,
  helmChart,
  type HelmChartOptions,
  OPERATOR_CLUSTER_RULES,
  OPERATOR_IMAGE_REPOSITORY,
  OPERATOR_LEASE_RULES,
  type PolicyRule,
} from "./helm_chart.ts";
export {
  FLEET_IMAGE_PATHS,
  FLEET_IMAGE_USER,
  type FleetImageContext,
  fleetImageContext,
  type FleetImageOptions,
  IMAGE_ARCHES,
  type ImageArch,
  ImageContextError,
} from "./image.ts";
export {
  archImageRef,
  buildImageIndex,
  type BuiltImage,
  bundleProgram,
  type ImageIndexOptions,
  imageSizeLines,
  type LayerSize,
} from "./image_index.ts";
