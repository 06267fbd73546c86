/**
 * The CustomResourceDefinitions of the kube source, generated from the same zod schemas as the
 * wire types: `Deployment` (namespaced, `fleetdep`) and `Device` (cluster-scoped, `fleetdev`).
 * The CRD-only parts are constraints keyed on core's zod schemas (bounds that keep the API
 * server's CEL cost estimate within limits, CEL rules with readable messages, list types);
 * field lists always come from zod. Pure.
 * @module
 */
import YAML from "yaml";
import {
  celString,
  type CrdRegistry,
  crdRegistry,
  type StructuralSchema,
  type ValidationRule,
  zodToStructural,
} from "./mod.ts";
import { API_GROUP, API_VERSION, DeploymentSpec, EMPTY_SELECTOR_RULE } from "../core/deployment.ts";
import { ACCEPTED, DeploymentResourceStatus } from "./deployment_resource.ts";
import {
  Conditions,
  DEVICE_KIND,
  DeviceSpec,
  DeviceStatus,
  LABEL_KEY_MAX,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  REACHABLE,
} from "./device_resource.ts";
import { DNS_LABEL_MAX, DNS_LABEL_PATTERN, DNS_LABEL_RULE } from "../core/ids.ts";
import { PodmanService, PodmanV0Data, VolumeMount } from "../core/score.ts";
import { PACKAGED_AGENT_PATHS } from "../core/device_policy.ts";
import {
  LABEL_VALUE_MAX,
  LabelKey,
  Labels,
  LabelSelector,
  LabelSelectorRequirement,
  LabelValue,
} from "../core/selector.ts";

/** The kind of the Deployment custom resource. */
export const DEPLOYMENT_KIND = "Deployment";
/** The version part of API_VERSION (`v1alpha1`). */
export const API_VERSION_NAME = API_VERSION.slice(API_GROUP.length + 1);
/** The category both kinds belong to: `kubectl get fleet`. */
export const FLEET_CATEGORY = "fleet";

/** Bounds the CEL cost estimator needs (an unbounded list is sized from the request limit). */
export const MAX_MATCH_EXPRESSIONS = 32;
/** Most values of one In/NotIn expression. */
export const MAX_SELECTOR_VALUES = 64;
/** Most services in one PodmanV0 workload. */
export const MAX_SERVICES = 64;
/** Most bind mounts of one service. */
export const MAX_VOLUMES = 32;
/** Most matchLabels entries of a selector. */
export const MAX_MATCH_LABELS = 64;

/** A CRD printer column. */
export interface PrinterColumn {
  name: string;
  type: "integer" | "number" | "string" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** The `apiextensions.k8s.io/v1` CustomResourceDefinition object. */
export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string };
  spec: {
    group: string;
    names: {
      plural: string;
      singular: string;
      kind: string;
      listKind: string;
      shortNames: string[];
      categories: string[];
    };
    scope: "Namespaced" | "Cluster";
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: StructuralSchema };
    }[];
  };
}

const DNS_LABEL_REGEX = celString(DNS_LABEL_PATTERN.source);

/** CEL rule: the object's name is a DNS label (at the root, CEL may read metadata.name). */
function nameRule(kind: string): ValidationRule {
  return {
    rule: `size(self.metadata.name) <= ${DNS_LABEL_MAX} && ` +
      `self.metadata.name.matches(${DNS_LABEL_REGEX})`,
    message: `the ${kind} name must be ${DNS_LABEL_RULE}`,
    messageExpression: `${celString(`invalid ${kind} name '`)} + self.metadata.name + ` +
      celString(`': it must be ${DNS_LABEL_RULE}`),
    fieldPath: ".metadata.name",
    reason: "FieldValueInvalid",
  };
}

const [IN, NOT_IN, EXISTS, DOES_NOT_EXIST] = ["In", "NotIn", "Exists", "DoesNotExist"].map(
  celString,
) as [string, string, string, string];

/** Selector rules: combinations that match no device, which zod's per-field checks miss. */
export const SELECTOR_RULES: readonly ValidationRule[] = [
  {
    rule: "!has(self.matchLabels) || !has(self.matchExpressions) || " +
      `self.matchExpressions.all(e, e.operator != ${DOES_NOT_EXIST} || !(e.key in self.matchLabels))`,
    message: "the selector matches no device: a key in matchLabels also has a DoesNotExist " +
      "expression",
  },
  {
    rule: "!has(self.matchExpressions) || self.matchExpressions.all(a, " +
      `a.operator != ${DOES_NOT_EXIST} || !self.matchExpressions.exists(b, b.key == a.key && ` +
      `(b.operator == ${EXISTS} || b.operator == ${IN})))`,
    message: "the selector matches no device: a key has a DoesNotExist expression and also an " +
      "Exists or In expression",
  },
  {
    rule: "!has(self.matchLabels) || !has(self.matchExpressions) || " +
      `self.matchExpressions.all(e, e.operator != ${IN} || !(e.key in self.matchLabels) || ` +
      "!has(e.values) || self.matchLabels[e.key] in e.values)",
    message: "the selector matches no device: matchLabels sets a key to a value that its In " +
      "expression does not list",
  },
  {
    rule: "!has(self.matchLabels) || !has(self.matchExpressions) || " +
      `self.matchExpressions.all(e, e.operator != ${NOT_IN} || !(e.key in self.matchLabels) || ` +
      "!has(e.values) || !(self.matchLabels[e.key] in e.values))",
    message: "the selector matches no device: matchLabels sets a key to a value that its NotIn " +
      "expression excludes",
  },
];

/**
 * An empty targetSelector is refused unless targetAllBoundDevices says it is meant (core's
 * emptySelectorProblem): a forgotten selector must not reach every device of the namespace.
 */
export const TARGET_SELECTOR_RULE: ValidationRule = {
  rule: "(has(self.targetSelector.matchLabels) && size(self.targetSelector.matchLabels) > 0) || " +
    "(has(self.targetSelector.matchExpressions) && " +
    "size(self.targetSelector.matchExpressions) > 0) || " +
    "(has(self.targetAllBoundDevices) && self.targetAllBoundDevices)",
  message: EMPTY_SELECTOR_RULE,
  fieldPath: ".targetSelector",
  reason: "FieldValueRequired",
};

/** Requirement rules: the same checks as LabelSelectorRequirement's zod refinement. */
export const REQUIREMENT_RULES: readonly ValidationRule[] = [
  {
    rule: `!(self.operator in [${IN}, ${NOT_IN}]) || (has(self.values) && size(self.values) > 0)`,
    message: "operators In and NotIn need at least one value",
    messageExpression: `"operator " + self.operator + " on key " + self.key + ` +
      `" needs at least one value"`,
  },
  {
    rule: `!(self.operator in [${EXISTS}, ${DOES_NOT_EXIST}]) || !has(self.values) || ` +
      "size(self.values) == 0",
    message: "operators Exists and DoesNotExist take no values",
    messageExpression: `"operator " + self.operator + " on key " + self.key + " takes no values"`,
  },
];

const LABEL_KEY_OK = `size(k) <= ${LABEL_KEY_MAX} && k.matches(${
  celString(LABEL_KEY_PATTERN.source)
})`;

/** Map keys have no schema of their own: the key rule of a label map is a CEL rule. */
export const LABEL_KEYS_RULE: ValidationRule = {
  rule: `self.all(k, ${LABEL_KEY_OK})`,
  message: "a label key must be a name of 1-63 characters of a-z, A-Z, 0-9, '-', '_' and '.', " +
    "starting and ending with a letter or digit, optionally after a lowercase DNS subdomain " +
    "prefix and '/'",
  messageExpression: `"invalid label key '" + self.filter(k, !(${LABEL_KEY_OK}))[0] + "': it ` +
    `must be a name of 1-63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending ` +
    `with a letter or digit, optionally after a lowercase DNS subdomain prefix and '/'"`,
};

/** Service names are DNS labels: they name containers and appear in labels. */
export const SERVICE_NAME_RULE: ValidationRule = {
  rule: `self.matches(${DNS_LABEL_REGEX})`,
  message: `a service name must be ${DNS_LABEL_RULE}`,
  messageExpression: `${celString("invalid service name '")} + self + ` +
    celString(`': it must be ${DNS_LABEL_RULE}`),
};

/** Longest host path; it bounds the CEL cost of the host path rules (Linux's own is 4096). */
export const HOST_PATH_MAX = 1024;

/**
 * Host path rules the API server can check before anything ships: what no device's policy
 * allows (core/device_policy.ts). The agent judges the normalized, symlink-resolved path;
 * these judge the path as written.
 */
export const HOST_PATH_RULES: readonly ValidationRule[] = [
  {
    rule: `!self.matches(${celString("(^|/)[.][.]?(/|$)")})`,
    message: "a host path must not have '.' or '..' segments",
    messageExpression: `${celString("host path '")} + self + ` +
      celString("' has '.' or '..' segments; write the path without them"),
  },
  {
    rule: [
      `self != "/"`,
      ...PACKAGED_AGENT_PATHS.map(({ path }) =>
        `self != ${celString(path)} && !self.startsWith(${celString(`${path}/`)}) && ` +
        `!${celString(`${path}/`)}.startsWith(self + "/")`
      ),
    ].join(" && "),
    message: "a host path must not be or hold the Fleet agent's own files",
    messageExpression: `${celString("host path '")} + self + ` +
      celString(
        `' is or holds the Fleet agent's own files (${
          PACKAGED_AGENT_PATHS.map((p) => p.path).join(", ")
        }), which no device lets a workload mount`,
      ),
  },
];

/** The Deployment name rule at the resource root. */
export const DEPLOYMENT_NAME_RULE: ValidationRule = nameRule("deployment");
/** The Device name rule at the resource root. */
export const DEVICE_NAME_RULE: ValidationRule = nameRule("device");

/** CRD-only constraints on core's zod schemas, by identity (no field is listed here). */
function deploymentRegistry() {
  const registry = crdRegistry();
  registry.add(LabelKey, { maxLength: LABEL_KEY_MAX, pattern: LABEL_KEY_PATTERN.source });
  registry.add(LabelValue, { maxLength: LABEL_VALUE_MAX, pattern: LABEL_VALUE_PATTERN.source });
  registry.add(Labels, {
    maxProperties: MAX_MATCH_LABELS,
    "x-kubernetes-validations": [LABEL_KEYS_RULE],
  });
  registry.add(LabelSelector, { "x-kubernetes-validations": [...SELECTOR_RULES] });
  registry.add(LabelSelector.shape.matchExpressions, { maxItems: MAX_MATCH_EXPRESSIONS });
  registry.add(LabelSelectorRequirement, { "x-kubernetes-validations": [...REQUIREMENT_RULES] });
  registry.add(LabelSelectorRequirement.shape.values, { maxItems: MAX_SELECTOR_VALUES });
  registry.add(PodmanService.shape.name, {
    maxLength: DNS_LABEL_MAX,
    "x-kubernetes-validations": [SERVICE_NAME_RULE],
  });
  registry.add(PodmanService.shape.volumes, { maxItems: MAX_VOLUMES });
  registry.add(VolumeMount.shape.hostPath, {
    maxLength: HOST_PATH_MAX,
    "x-kubernetes-validations": [...HOST_PATH_RULES],
  });
  // Names are unique (zod refuses duplicates); as a list-map the API server says so too, and
  // server-side apply merges services by name.
  registry.add(PodmanV0Data.shape.services, {
    maxItems: MAX_SERVICES,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
  });
  conditionsAsListMap(registry);
  return registry;
}

/** One condition per type, merged by type under server-side apply (as metav1.Condition lists). */
function conditionsAsListMap(registry: CrdRegistry): void {
  registry.add(Conditions, {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
  });
}

function deviceRegistry() {
  const registry = crdRegistry();
  conditionsAsListMap(registry);
  return registry;
}

/** The root of a resource schema; CEL at the root may read metadata.name. */
function resourceSchema(
  description: string,
  spec: StructuralSchema,
  status: StructuralSchema,
  rules: ValidationRule[],
): StructuralSchema {
  return {
    description,
    type: "object",
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      // Only name and generateName may be constrained here; the bound on name is what lets
      // the cost estimator accept a regex over it.
      metadata: {
        type: "object",
        properties: {
          name: { type: "string", maxLength: DNS_LABEL_MAX },
          generateName: { type: "string" },
        },
      },
      spec,
      status,
    },
    required: ["spec"],
    "x-kubernetes-validations": rules,
  };
}

function crd(options: {
  kind: string;
  plural: string;
  shortName: string;
  scope: "Namespaced" | "Cluster";
  columns: PrinterColumn[];
  schema: StructuralSchema;
}): CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${options.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      names: {
        plural: options.plural,
        singular: options.kind.toLowerCase(),
        kind: options.kind,
        listKind: `${options.kind}List`,
        shortNames: [options.shortName],
        categories: [FLEET_CATEGORY],
      },
      scope: options.scope,
      versions: [{
        name: API_VERSION_NAME,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: options.columns,
        schema: { openAPIV3Schema: options.schema },
      }],
    },
  };
}

function aggregateColumn(name: string, field: string, description: string): PrinterColumn {
  return { name, type: "integer", jsonPath: `.status.aggregate.${field}`, description };
}

/** The Deployment CRD (namespaced, short name `fleetdep`, status subresource). */
export function deploymentCrd(): CustomResourceDefinition {
  const metadata = deploymentRegistry();
  const structural = zodToStructural(DeploymentSpec, { metadata });
  const spec = {
    description: "Which devices (targetSelector), what they run (score), how it rolls out.",
    ...structural,
    "x-kubernetes-validations": [
      ...structural["x-kubernetes-validations"] ?? [],
      TARGET_SELECTOR_RULE,
    ],
  };
  const status = {
    description: "Written by the fleet operator: how the matched devices are doing, and " +
      "(condition Accepted) why a generation was refused.",
    ...zodToStructural(DeploymentResourceStatus, { metadata }),
  };
  return crd({
    kind: DEPLOYMENT_KIND,
    plural: "deployments",
    shortName: "fleetdep",
    scope: "Namespaced",
    columns: [
      aggregateColumn("Matched", "matchedDeviceCount", "Devices the selector matches"),
      aggregateColumn("Succeeded", "succeeded", "Devices running the current generation"),
      aggregateColumn("Failed", "failed", "Devices that failed the current generation"),
      aggregateColumn("Pending", "pending", "Matched devices neither running nor failed"),
      aggregateColumn("Unreachable", "unreachable", "Matched devices with a stale heartbeat"),
      {
        name: ACCEPTED,
        type: "string",
        jsonPath: `.status.conditions[?(@.type==${JSON.stringify(ACCEPTED)})].status`,
        description: "False: the operator refused the current generation (see its message); " +
          "empty for a deployment never refused",
      },
      {
        name: "Revision",
        type: "integer",
        jsonPath: ".status.rollout.revision.number",
        description: "The revision a progressive rollout is rolling out; empty for Immediate",
      },
      {
        name: "Rollout",
        type: "string",
        jsonPath: ".status.rollout.phase",
        description: "Progressing, Paused, Degraded, RollingBack, RolledBack or Complete",
      },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
    schema: resourceSchema(
      "A workload for the devices a label selector matches.",
      spec,
      status,
      [DEPLOYMENT_NAME_RULE],
    ),
  });
}

/** The Device CRD (cluster-scoped, short name `fleetdev`, status subresource). */
export function deviceCrd(): CustomResourceDefinition {
  const metadata = deviceRegistry();
  const spec = {
    description: "What the device's agent reports about the machine.",
    ...zodToStructural(DeviceSpec, { metadata }),
  };
  const status = {
    description: "Written by the fleet operator: last heartbeat and reachability.",
    ...zodToStructural(DeviceStatus, { metadata }),
  };
  return crd({
    kind: DEVICE_KIND,
    plural: "devices",
    shortName: "fleetdev",
    scope: "Cluster",
    columns: [
      { name: "Arch", type: "string", jsonPath: ".spec.inventory.arch" },
      { name: "Agent", type: "string", jsonPath: ".spec.inventory.agentVersion" },
      {
        name: REACHABLE,
        type: "string",
        jsonPath: `.status.conditions[?(@.type==${JSON.stringify(REACHABLE)})].status`,
      },
      { name: "Last Seen", type: "date", jsonPath: ".status.lastSeen" },
      // In `kubectl get -o wide`: free text does not fit the default view.
      { name: "Description", type: "string", jsonPath: ".spec.description", priority: 1 },
    ],
    schema: resourceSchema(
      "A device running the fleet agent, named by its device id; its labels are the selectable ones of its config.",
      spec,
      status,
      [DEVICE_NAME_RULE],
    ),
  });
}

/**
 * One CRD as a YAML document. Written as YAML 1.1 so words like `no` (a restartPolicy) are
 * quoted: kubectl's YAML 1.1 parser would otherwise read them as booleans. Long CEL rules
 * stay on one line.
 */
export function crdYaml(definition: CustomResourceDefinition): string {
  return YAML.stringify(definition, { lineWidth: 0, version: "1.1" });
}

/** Both CRDs as one multi-document YAML stream, ready for `kubectl apply -f -`. */
export function crdsYaml(): string {
  return [deploymentCrd(), deviceCrd()].map(crdYaml).join("---\n");
}
