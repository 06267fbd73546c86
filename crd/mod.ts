/**
 * Kubernetes schema generation: the zod → structural schema converter, the CEL rules it and
 * the CRDs write, the structural checker that proves the API server would accept the result,
 * the `Deployment` and `Device` CRDs, the Device resource the operator mirrors devices into,
 * and the Deployment's status with its Accepted condition. Pure; used by the operator's
 * Kubernetes source and `fleet operator install|chart`.
 * @module
 */
export {
  type CrdMetadata,
  type CrdRegistry,
  crdRegistry,
  type SchemaType,
  SchemaTypes,
  type StructuralSchema,
  type ValidationRule,
} from "./schema.ts";
export { celField, celString } from "./cel.ts";
export {
  toStructural,
  UnstructuralSchemaError,
  zodToStructural,
  type ZodToStructuralOptions,
} from "./converter.ts";
export { celBracketProblem, structuralProblems } from "./structural_check.ts";
export {
  API_VERSION_NAME,
  crdsYaml,
  crdYaml,
  type CustomResourceDefinition,
  DEPLOYMENT_KIND,
  DEPLOYMENT_NAME_RULE,
  deploymentCrd,
  DEVICE_NAME_RULE,
  deviceCrd,
  FLEET_CATEGORY,
  HOST_PATH_MAX,
  HOST_PATH_RULES,
  LABEL_KEYS_RULE,
  MAX_MATCH_EXPRESSIONS,
  MAX_MATCH_LABELS,
  MAX_SELECTOR_VALUES,
  MAX_SERVICES,
  MAX_VOLUMES,
  type PrinterColumn,
  REQUIREMENT_RULES,
  SELECTOR_RULES,
  SERVICE_NAME_RULE,
} from "./crds.ts";
export {
  ACCEPTED,
  acceptedCondition,
  acceptedOf,
  AcceptedReasons,
  DeploymentResourceStatus,
  refusalMessage,
  refusalOf,
} from "./deployment_resource.ts";
export {
  Condition,
  Conditions,
  type ConditionStatus,
  ConditionStatuses,
  DEVICE_KIND,
  type DeviceApply,
  DeviceMetadata,
  DeviceResource,
  deviceResource,
  DeviceSpec,
  DeviceStatus,
  deviceStatus,
  kubeTime,
  LABEL_KEY_MAX,
  LABEL_KEY_PATTERN,
  LABEL_PREFIX_MAX,
  LABEL_VALUE_PATTERN,
  REACHABLE,
  reachableCondition,
  type ReachableReason,
  ReachableReasons,
  setCondition,
} from "./device_resource.ts";
