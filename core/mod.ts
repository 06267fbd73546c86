/**
 * Fleet's pure core: wire types (zod schemas and their inferred types), identifier rules,
 * keys and subjects, label selectors, the agent's planner, the operator's targeting diff,
 * port conflicts and aggregation, and the Clock port. Nothing
 * here does I/O or imports from outside `core/`.
 * @module
 */
export { type Clock, type Timer } from "./clock.ts";
export { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.ts";
export { type HeartbeatSighting, isStale, lastSeenAt } from "./liveness.ts";
export {
  AUDIT_STREAM,
  auditArguments,
  AuditOutcomes,
  AuditRecord,
  auditSubject,
  CommandReply,
  CommandRequest,
  COMMANDS_PREFIX,
  type CommandVerb,
  CommandVerbs,
  DiagDeployment,
  DiagResult,
  DiagWarning,
  parseCommandSubject,
  type ParsedCommandSubject,
  PingResult,
  ReconcileResult,
  ReplyMemo,
  RequestId,
  RequestOf,
  RestartRequest,
  RestartResult,
  type RestartTargets,
  restartTargets,
  ResultOf,
} from "./device_commands.ts";
export { parseSince, SINCE_RULE } from "./since.ts";
export {
  type DeviceInstances,
  InstanceConflict,
  InstanceId,
  instanceRole,
  type InstanceSeen,
  judgeInstances,
  liveInstances,
  newInstanceId,
  recordSighting,
} from "./agent_instances.ts";
export {
  DNS_LABEL_MAX,
  DNS_LABEL_PATTERN,
  DNS_LABEL_RULE,
  type IdentifierKind,
  identifierProblem,
  identifierSchema,
  InvalidIdentifierError,
  validateIdentifier,
} from "./ids.ts";
export { describeIssues, fieldPath, parseJsonWith, parseWith, WireFormatError } from "./errors.ts";
export { parseStrictWith, unknownFields } from "./strict.ts";
export {
  formatSelector,
  isEmptySelector,
  LABEL_VALUE_MAX,
  LABEL_VALUE_RULE,
  LabelKey,
  labelKeyProblem,
  Labels,
  LabelSelector,
  LabelSelectorRequirement,
  LabelValue,
  labelValueProblem,
  matchesSelector,
  parseSelector,
  type SelectorOperator,
  SelectorOperators,
  SelectorSyntaxError,
  suggestLabelValue,
} from "./selector.ts";
export {
  EnvVar,
  formatHostPort,
  type HostPort,
  MAX_ARG_STRLEN,
  type ParsedPort,
  parsePort,
  PodmanService,
  PodmanV0,
  PodmanV0Data,
  PortMapping,
  portsOverlap,
  resolveScore,
  ResourceLimits,
  RestartPolicies,
  type RestartPolicy,
  Score,
  ScoreEnvelope,
  VolumeMount,
  WorkloadError,
  WorkloadTypes,
} from "./score.ts";
export {
  API_GROUP,
  API_VERSION,
  DEFAULT_NAMESPACE,
  Deployment,
  DeploymentManifest,
  DeploymentMetadata,
  DeploymentSpec,
  DesiredState,
  desiredStateOf,
  EMPTY_SELECTOR_RULE,
  emptySelectorProblem,
  nextGeneration,
  parseDeploymentManifest,
  Rollout,
  type StoredDeployment,
} from "./deployment.ts";
export {
  DEVICE_ANNOTATIONS_MAX,
  DEVICE_ID_LABEL,
  DEVICE_LABEL_VALUE_MAX,
  DEVICE_TEXT_MAX,
  DeviceAnnotations,
  DeviceDescription,
  DeviceInfo,
  DeviceLabels,
  deviceLabels,
  Inventory,
  splitDeviceLabels,
  type SplitLabels,
  type UnselectableLabel,
  unselectableLabels,
  withSelectableLabels,
} from "./device_info.ts";
export {
  adoptableLabels,
  applyLabelEdit,
  formatLabels,
  type LabelEdit,
  LabelEditError,
  parseLabelEdit,
  RegisteredLabels,
  targetingLabels,
  unregisteredLabels,
  withoutDeviceId,
} from "./device_labels.ts";
export {
  DeploymentState,
  LAST_ERROR_MAX,
  type Phase,
  Phases,
  shortError,
  stateChanged,
} from "./deployment_state.ts";
export { Heartbeat } from "./heartbeat.ts";
export { LEASE_BUCKET, LeaseRecord, OPERATOR_LEASE_KEY } from "./lease.ts";
export { Aggregate, DeploymentStatus, LastError } from "./deployment_status.ts";
export {
  BUCKET_HISTORY,
  type BucketName,
  Buckets,
  commandSubject,
  type DeploymentRef,
  keys,
  parseKey,
  refKey,
  REPORT_BUCKETS,
} from "./keys.ts";
export { canonicalJson, specHash } from "./spec_hash.ts";
export {
  type ContainerGrants,
  decidePolicy,
  DEFAULT_DEVICE_POLICY,
  DEFAULT_LIMITS,
  type DevicePolicy,
  foreseePolicyRefusals,
  grantViolations,
  type HostPathRule,
  imageLocation,
  isUnder,
  type Limits,
  normalizeHostPath,
  PACKAGED_AGENT_PATHS,
  type PolicyDecision,
  type PolicyInput,
  type ProtectedPath,
} from "./device_policy.ts";
export {
  type Action,
  type Assessment,
  ContainerLabels,
  containerLabels,
  containerName,
  type DesiredEntry,
  MANAGED_BY,
  type ObservedContainer,
  type Plan,
  plan,
  type PlanInput,
  type PublishedPort,
  type ServiceCondition,
  serviceHash,
  type ServiceStatus,
} from "./planner.ts";
export {
  currentFailure,
  FAILURE_BACKOFF,
  type FailureBackoff,
  type FailureCause,
  failureMessage,
  isBackingOff,
  recordFailure,
} from "./failure_backoff.ts";
export {
  CRASH_LOOP_EXITS,
  CRASH_LOOP_WINDOW_MS,
  isCrashLooping,
  needsRestartCount,
  observeService,
  type ServiceHealth,
  type ServiceObservation,
  type ServiceVerdict,
} from "./service_health.ts";
export { diffTargets, heldDeployment, selectDevices, type TargetDiff } from "./targeting.ts";
export {
  ALL_DEVICES,
  type BindingInput,
  DEVICE_SELECTOR_ANNOTATION,
  inScope,
  NamespaceBinding,
  NAMESPACES_BUCKET,
  parseBinding,
  type TargetScope,
  targetScope,
} from "./tenancy.ts";
export {
  conflictMessage,
  decidePortConflicts,
  type ForeseenConflict,
  foreseePortConflicts,
  type PortClaimant,
  type PortConflict,
  publishedPorts,
} from "./conflicts.ts";
export {
  aggregateEquals,
  type AggregateInput,
  computeAggregate,
  DEFAULT_STALE_AFTER_MS,
  UNKNOWN_GENERATION,
} from "./aggregate.ts";
export {
  buildDeployment,
  DeploymentFlagError,
  type DeploymentFlags,
} from "./deployment_builder.ts";
export { type DeviceConsumer, deviceConsumer, deviceOfConsumer } from "./device_consumer.ts";
export {
  DEVICE_RESPONSE_PERMISSION,
  deviceInboxPrefix,
  type DevicePermissions,
  devicePermissions,
  type FleetRole,
  FleetRoles,
  type NatsPermissions,
  operatorPermissions,
  permissionsForRole,
  personPermissions,
  type PersonRole,
  type ResponsePermission,
  ROLE_VERBS,
  type SubjectPermission,
} from "./permissions.ts";
export { principalInboxPrefix, principalOf, principalOfClaims } from "./principal.ts";
export {
  ACCOUNT_CONNECTION_LIMITS,
  ACCOUNT_JETSTREAM_DEFAULTS,
  type BucketLimits,
  bucketLimits,
  MAX_DEPLOYMENT_BYTES,
  type UserLimits,
  userLimits,
} from "./limits.ts";
export { type DiffLine, diffLines, formatDiff } from "./text_diff.ts";
export {
  ZITADEL_PROJECT_ROLES_SCOPE,
  zitadelProjectAudienceScope,
  zitadelScope,
} from "./zitadel.ts";
