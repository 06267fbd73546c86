/**
 * The generated CRDs: shape, names, printer columns, CEL rules and the bounds that keep their
 * cost estimate acceptable, no drift from the zod schemas, and golden files.
 *
 * Golden files: fixtures/crds/deployment.yaml and device.yaml. After an intended change,
 * regenerate them with `FLEET_UPDATE_GOLDEN=1 deno test -A crd/crds_test.ts` and review the
 * diff. (They were checked against a real kube-apiserver 1.34: both install, and each CEL
 * rule rejects its case with its message.)
 */
import assert from "node:assert/strict";
import * as z from "zod";
import YAML from "yaml";
import { structuralProblems, type StructuralSchema, type ValidationRule } from "./mod.ts";
import {
  API_VERSION_NAME,
  crdsYaml,
  crdYaml,
  type CustomResourceDefinition,
  DEPLOYMENT_NAME_RULE,
  deploymentCrd,
  DEVICE_NAME_RULE,
  deviceCrd,
  HOST_PATH_MAX,
  HOST_PATH_RULES,
  LABEL_KEYS_RULE,
  MAX_MATCH_EXPRESSIONS,
  MAX_MATCH_LABELS,
  MAX_SELECTOR_VALUES,
  MAX_SERVICES,
  MAX_VOLUMES,
  REQUIREMENT_RULES,
  SELECTOR_RULES,
  SERVICE_NAME_RULE,
  TARGET_SELECTOR_RULE,
} from "./crds.ts";
import { API_GROUP, DeploymentSpec } from "../core/deployment.ts";
import { DeviceSpec, DeviceStatus, LABEL_KEY_MAX } from "./device_resource.ts";
import { DeploymentResourceStatus } from "./deployment_resource.ts";
import { LABEL_VALUE_MAX } from "../core/selector.ts";
import { DNS_LABEL_PATTERN, DNS_LABEL_RULE } from "../core/ids.ts";
import { WorkloadTypes } from "../core/score.ts";
import { PACKAGED_AGENT_PATHS } from "../core/device_policy.ts";

const FIXTURES = new URL("../fixtures/crds/", import.meta.url);

function version(crd: CustomResourceDefinition) {
  const v = crd.spec.versions[0];
  assert.ok(v, "one version");
  return v;
}

function schemaOf(crd: CustomResourceDefinition): StructuralSchema {
  return version(crd).schema.openAPIV3Schema;
}

/** The node at a dotted path; `[]` steps into items, `{}` into additionalProperties. */
function at(schema: StructuralSchema, path: string): StructuralSchema {
  let node: StructuralSchema | undefined = schema;
  for (const step of path.split(".")) {
    if (step === "[]") node = node?.items;
    else if (step === "{}") node = node?.additionalProperties;
    else node = node?.properties?.[step];
    assert.ok(node, `no schema node at ${path} (step ${step})`);
  }
  return node;
}

function rulesAt(schema: StructuralSchema, path: string): ValidationRule[] {
  return (path === "" ? schema : at(schema, path))["x-kubernetes-validations"] ?? [];
}

// --- shape ----------------------------------------------------------------------------

Deno.test("deploymentCrd() is a namespaced apiextensions.k8s.io/v1 CRD with a status subresource", () => {
  const crd = deploymentCrd();
  assert.equal(crd.apiVersion, "apiextensions.k8s.io/v1");
  assert.equal(crd.kind, "CustomResourceDefinition");
  assert.equal(crd.metadata.name, `deployments.${API_GROUP}`);
  assert.equal(crd.spec.group, "fleet.nationtech.io");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.deepEqual(crd.spec.names, {
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    listKind: "DeploymentList",
    shortNames: ["fleetdep"],
    categories: ["fleet"],
  });
  assert.equal(crd.spec.versions.length, 1);
  const v = version(crd);
  assert.equal(v.name, "v1alpha1");
  assert.equal(v.name, API_VERSION_NAME);
  assert.equal(v.served, true);
  assert.equal(v.storage, true);
  assert.deepEqual(v.subresources, { status: {} });
});

Deno.test("deviceCrd() is a cluster-scoped CRD with a status subresource", () => {
  const crd = deviceCrd();
  assert.equal(crd.metadata.name, "devices.fleet.nationtech.io");
  assert.equal(crd.spec.scope, "Cluster");
  assert.deepEqual(crd.spec.names, {
    plural: "devices",
    singular: "device",
    kind: "Device",
    listKind: "DeviceList",
    shortNames: ["fleetdev"],
    categories: ["fleet"],
  });
  assert.equal(version(crd).name, "v1alpha1");
  assert.deepEqual(version(crd).subresources, { status: {} });
});

Deno.test("both CRD schemas are structural", () => {
  assert.deepEqual(structuralProblems(schemaOf(deploymentCrd())), []);
  assert.deepEqual(structuralProblems(schemaOf(deviceCrd())), []);
});

Deno.test("the resource roots declare metadata.name bounded, and require spec", () => {
  for (const crd of [deploymentCrd(), deviceCrd()]) {
    const schema = schemaOf(crd);
    assert.deepEqual(schema.properties?.metadata, {
      type: "object",
      properties: { name: { type: "string", maxLength: 63 }, generateName: { type: "string" } },
    });
    assert.deepEqual(schema.required, ["spec"]);
    assert.equal(schema.properties?.apiVersion?.type, "string");
    assert.equal(schema.properties?.kind?.type, "string");
  }
});

// --- printer columns ------------------------------------------------------------------

/** The schema type a printer column's JSONPath lands on (filters step into list items). */
function columnTarget(schema: StructuralSchema, jsonPath: string): StructuralSchema {
  const path = jsonPath.replace(/^\./, "").replace(/\[\?\([^)]*\)\]/g, ".[]");
  return at(schema, path);
}

Deno.test("deploymentCrd() prints Matched/Succeeded/Failed/Pending/Unreachable, Accepted, the rollout's Revision and phase, and Age", () => {
  const columns = version(deploymentCrd()).additionalPrinterColumns;
  assert.deepEqual(columns.map((c) => [c.name, c.type, c.jsonPath]), [
    ["Matched", "integer", ".status.aggregate.matchedDeviceCount"],
    ["Succeeded", "integer", ".status.aggregate.succeeded"],
    ["Failed", "integer", ".status.aggregate.failed"],
    ["Pending", "integer", ".status.aggregate.pending"],
    ["Unreachable", "integer", ".status.aggregate.unreachable"],
    ["Accepted", "string", '.status.conditions[?(@.type=="Accepted")].status'],
    ["Revision", "integer", ".status.rollout.revision.number"],
    ["Rollout", "string", ".status.rollout.phase"],
    ["Age", "date", ".metadata.creationTimestamp"],
  ]);
  const schema = schemaOf(deploymentCrd());
  for (const column of columns.filter((c) => c.type === "integer")) {
    assert.equal(columnTarget(schema, column.jsonPath).type, "integer", column.name);
  }
  assert.deepEqual(
    columnTarget(schema, '.status.conditions[?(@.type=="Accepted")].status').enum,
    ["True", "False", "Unknown"],
  );
});

Deno.test("deviceCrd() prints Arch, Agent, Reachable, Last Seen and (wide) Description from real fields", () => {
  const columns = version(deviceCrd()).additionalPrinterColumns;
  assert.deepEqual(columns.map((c) => [c.name, c.type, c.jsonPath]), [
    ["Arch", "string", ".spec.inventory.arch"],
    ["Agent", "string", ".spec.inventory.agentVersion"],
    ["Reachable", "string", '.status.conditions[?(@.type=="Reachable")].status'],
    ["Last Seen", "date", ".status.lastSeen"],
    ["Description", "string", ".spec.description"],
  ]);
  assert.equal(columns.at(-1)?.priority, 1, "the description shows in -o wide only");
  const schema = schemaOf(deviceCrd());
  assert.equal(columnTarget(schema, ".spec.description").type, "string");
  assert.equal(columnTarget(schema, ".spec.inventory.arch").type, "string");
  assert.equal(columnTarget(schema, ".spec.inventory.agentVersion").type, "string");
  assert.deepEqual(
    columnTarget(schema, '.status.conditions[?(@.type=="Reachable")].status').enum,
    ["True", "False", "Unknown"],
  );
  assert.equal(columnTarget(schema, ".status.lastSeen").format, "date-time");
});

// --- CEL rules ------------------------------------------------------------------------

Deno.test("the name rules check metadata.name against the core DNS label rule", () => {
  assert.deepEqual(rulesAt(schemaOf(deploymentCrd()), ""), [DEPLOYMENT_NAME_RULE]);
  assert.deepEqual(rulesAt(schemaOf(deviceCrd()), ""), [DEVICE_NAME_RULE]);
  for (
    const [rule, kind] of [[DEPLOYMENT_NAME_RULE, "deployment"], [
      DEVICE_NAME_RULE,
      "device",
    ]] as const
  ) {
    assert.equal(
      rule.rule,
      'size(self.metadata.name) <= 63 && self.metadata.name.matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")',
    );
    assert.ok(rule.rule.includes(DNS_LABEL_PATTERN.source));
    assert.equal(rule.message, `the ${kind} name must be ${DNS_LABEL_RULE}`);
    assert.equal(
      rule.messageExpression,
      `"invalid ${kind} name '" + self.metadata.name + "': it must be ${DNS_LABEL_RULE}"`,
    );
    assert.equal(rule.fieldPath, ".metadata.name");
  }
});

const SPEC = "spec";
const SELECTOR = `${SPEC}.targetSelector`;
const SERVICES = `${SPEC}.score.data.services`;

Deno.test("service names must be DNS labels (CEL, bounded string) and unique (list-map)", () => {
  const schema = schemaOf(deploymentCrd());
  const name = at(schema, `${SERVICES}.[].name`);
  assert.equal(name.maxLength, 63);
  assert.deepEqual(name["x-kubernetes-validations"], [SERVICE_NAME_RULE]);
  assert.equal(SERVICE_NAME_RULE.rule, 'self.matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")');
  assert.equal(SERVICE_NAME_RULE.message, `a service name must be ${DNS_LABEL_RULE}`);
  const services = at(schema, SERVICES);
  assert.equal(services["x-kubernetes-list-type"], "map");
  assert.deepEqual(services["x-kubernetes-list-map-keys"], ["name"]);
  assert.equal(services.maxItems, MAX_SERVICES);
  assert.equal(services.minItems, 1);
});

Deno.test("host paths are bounded and carry the rules no device policy lifts: no '.' or '..', not the agent's files", () => {
  const hostPath = at(schemaOf(deploymentCrd()), `${SERVICES}.[].volumes.[].hostPath`);
  assert.equal(hostPath.maxLength, HOST_PATH_MAX);
  assert.equal(at(schemaOf(deploymentCrd()), `${SERVICES}.[].volumes`).maxItems, MAX_VOLUMES);
  assert.deepEqual(hostPath["x-kubernetes-validations"], [...HOST_PATH_RULES]);
  const [dots, agent] = HOST_PATH_RULES;
  assert.equal(dots!.rule, '!self.matches("(^|/)[.][.]?(/|$)")');
  for (const path of PACKAGED_AGENT_PATHS) assert.ok(agent!.rule.includes(`"${path.path}/"`));
});

Deno.test("score.type may only be a known workload type (the enum names them)", () => {
  // An enum violation is reported as `Unsupported value: "X": supported values: "PodmanV0"`,
  // and it stops the API server from evaluating any CEL rule, so this is an enum, not CEL.
  assert.deepEqual(at(schemaOf(deploymentCrd()), `${SPEC}.score.type`).enum, [...WorkloadTypes]);
});

Deno.test("the selector rules catch selectors that match nothing by construction", () => {
  const rules = rulesAt(schemaOf(deploymentCrd()), SELECTOR);
  assert.deepEqual(rules, [...SELECTOR_RULES]);
  assert.deepEqual(rules.map((r) => r.message), [
    "the selector matches no device: a key in matchLabels also has a DoesNotExist expression",
    "the selector matches no device: a key has a DoesNotExist expression and also an Exists " +
    "or In expression",
    "the selector matches no device: matchLabels sets a key to a value that its In expression " +
    "does not list",
    "the selector matches no device: matchLabels sets a key to a value that its NotIn " +
    "expression excludes",
  ]);
  assert.deepEqual(rules.map((r) => r.rule), [
    '!has(self.matchLabels) || !has(self.matchExpressions) || self.matchExpressions.all(e, e.operator != "DoesNotExist" || !(e.key in self.matchLabels))',
    '!has(self.matchExpressions) || self.matchExpressions.all(a, a.operator != "DoesNotExist" || !self.matchExpressions.exists(b, b.key == a.key && (b.operator == "Exists" || b.operator == "In")))',
    '!has(self.matchLabels) || !has(self.matchExpressions) || self.matchExpressions.all(e, e.operator != "In" || !(e.key in self.matchLabels) || !has(e.values) || self.matchLabels[e.key] in e.values)',
    '!has(self.matchLabels) || !has(self.matchExpressions) || self.matchExpressions.all(e, e.operator != "NotIn" || !(e.key in self.matchLabels) || !has(e.values) || !(self.matchLabels[e.key] in e.values))',
  ]);
});

Deno.test("the spec rule refuses an empty targetSelector unless targetAllBoundDevices", () => {
  const spec = at(schemaOf(deploymentCrd()), "spec");
  assert.ok(rulesAt(spec, "").includes(TARGET_SELECTOR_RULE));
  assert.equal(at(spec, "targetAllBoundDevices").type, "boolean");
  assert.equal(
    TARGET_SELECTOR_RULE.message,
    "spec.targetSelector is empty: a deployment names the devices it targets; to target every " +
      "device bound to its namespace, set spec.targetAllBoundDevices: true",
  );
});

Deno.test("the requirement rules mirror LabelSelectorRequirement's zod checks", () => {
  const rules = rulesAt(schemaOf(deploymentCrd()), `${SELECTOR}.matchExpressions.[]`);
  assert.deepEqual(rules, [...REQUIREMENT_RULES]);
  assert.deepEqual(rules.map((r) => [r.rule, r.message, r.messageExpression]), [
    [
      '!(self.operator in ["In", "NotIn"]) || (has(self.values) && size(self.values) > 0)',
      "operators In and NotIn need at least one value",
      '"operator " + self.operator + " on key " + self.key + " needs at least one value"',
    ],
    [
      '!(self.operator in ["Exists", "DoesNotExist"]) || !has(self.values) || size(self.values) == 0',
      "operators Exists and DoesNotExist take no values",
      '"operator " + self.operator + " on key " + self.key + " takes no values"',
    ],
  ]);
});

Deno.test("matchLabels keys are checked by CEL (a map key has no schema)", () => {
  const matchLabels = at(schemaOf(deploymentCrd()), `${SELECTOR}.matchLabels`);
  assert.deepEqual(matchLabels["x-kubernetes-validations"], [LABEL_KEYS_RULE]);
  assert.match(LABEL_KEYS_RULE.rule, /^self\.all\(k, size\(k\) <= 317 && k\.matches\(/);
});

Deno.test("every list and string a CEL rule walks is bounded (cost estimate)", () => {
  const schema = schemaOf(deploymentCrd());
  assert.equal(at(schema, `${SELECTOR}.matchExpressions`).maxItems, MAX_MATCH_EXPRESSIONS);
  assert.equal(at(schema, `${SELECTOR}.matchExpressions.[].values`).maxItems, MAX_SELECTOR_VALUES);
  assert.equal(at(schema, `${SELECTOR}.matchExpressions.[].key`).maxLength, LABEL_KEY_MAX);
  assert.equal(at(schema, `${SELECTOR}.matchExpressions.[].values.[]`).maxLength, LABEL_VALUE_MAX);
  assert.equal(at(schema, `${SELECTOR}.matchLabels`).maxProperties, MAX_MATCH_LABELS);
  assert.equal(at(schema, `${SELECTOR}.matchLabels.{}`).maxLength, LABEL_VALUE_MAX);
  assert.equal(at(schema, "metadata.name").maxLength, 63);
});

Deno.test("every CEL rule in both CRDs has a one-line message", () => {
  const seen: string[] = [];
  const walk = (node: StructuralSchema, path: string) => {
    for (const rule of node["x-kubernetes-validations"] ?? []) {
      assert.ok(rule.message && !/\n/.test(rule.message), `${path}: ${rule.rule}`);
      seen.push(path);
    }
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      walk(child, `${path}.${name}`);
    }
    if (node.items) walk(node.items, `${path}[]`);
    if (node.additionalProperties) walk(node.additionalProperties, `${path}{}`);
  };
  walk(schemaOf(deploymentCrd()), "");
  walk(schemaOf(deviceCrd()), "");
  // The selector of each rollout batch is checked like the target selector (4 + 1 + 2).
  assert.equal(seen.length, 1 + 1 + 4 + 2 + 1 + 1 + 2 + 1 + 7, seen.join(", "));
});

Deno.test("the Device and Deployment conditions are list-maps keyed by type, like metav1.Condition lists", () => {
  for (const crd of [deviceCrd(), deploymentCrd()]) {
    const conditions = at(schemaOf(crd), "status.conditions");
    assert.equal(conditions["x-kubernetes-list-type"], "map", crd.spec.names.kind);
    assert.deepEqual(conditions["x-kubernetes-list-map-keys"], ["type"]);
    assert.deepEqual(conditions.items?.required, [
      "type",
      "status",
      "reason",
      "message",
      "lastTransitionTime",
    ]);
  }
});

// --- no drift from zod ----------------------------------------------------------------

type Kind =
  | "object"
  | "array"
  | "string"
  | "integer"
  | "number"
  | "boolean"
  | "map"
  | "int-or-string"
  | "open";

function isIntOrString(schema: z.ZodUnion): boolean {
  const kinds = (schema.options as z.ZodType[]).map((option) =>
    option instanceof z.ZodNumber && option.isInt ? "integer" : option._zod.def.type
  );
  return kinds.length === 2 && kinds.includes("integer") && kinds.includes("string");
}

/** Every path of a zod schema with the node kind it must have in the CRD. */
function zodPaths(schema: z.ZodType, path = "", out = new Map<string, Kind>()): Map<string, Kind> {
  if (
    schema instanceof z.ZodOptional || schema instanceof z.ZodDefault ||
    schema instanceof z.ZodNullable
  ) {
    return zodPaths(schema._zod.def.innerType as z.ZodType, path, out);
  }
  if (schema instanceof z.ZodObject) {
    out.set(path, "object");
    for (const [key, child] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      zodPaths(child, path ? `${path}.${key}` : key, out);
    }
  } else if (schema instanceof z.ZodUnion && isIntOrString(schema)) {
    out.set(path, "int-or-string");
  } else if (schema instanceof z.ZodUnion) {
    for (const option of schema.options as z.ZodType[]) zodPaths(option, path, out);
  } else if (schema instanceof z.ZodArray) {
    out.set(path, "array");
    zodPaths(schema.element as z.ZodType, `${path}.[]`, out);
  } else if (schema instanceof z.ZodRecord) {
    out.set(path, "map");
    zodPaths(schema._zod.def.valueType as z.ZodType, `${path}.{}`, out);
  } else if (schema._zod.def.type === "string" || schema instanceof z.ZodEnum) {
    // def.type, not instanceof ZodString: z.iso.datetime() is a string format of its own class.
    out.set(path, "string");
  } else if (schema instanceof z.ZodLiteral) {
    out.set(path, typeof schema.value === "string" ? "string" : "open");
  } else if (schema instanceof z.ZodNumber) {
    out.set(path, schema.isInt ? "integer" : "number");
  } else if (schema instanceof z.ZodBoolean) {
    out.set(path, "boolean");
  } else {
    out.set(path, "open");
  }
  return out;
}

function assertCovers(zodSchema: z.ZodType, crdNode: StructuralSchema, prefix: string): number {
  const paths = zodPaths(zodSchema);
  for (const [path, kind] of paths) {
    const node = path === "" ? crdNode : at(crdNode, path);
    const typeless = kind === "open" || kind === "int-or-string";
    const expected = kind === "map" ? "object" : typeless ? undefined : kind;
    assert.equal(node.type, expected, `${prefix}.${path}`);
    if (kind === "int-or-string") {
      assert.equal(node["x-kubernetes-int-or-string"], true, `${prefix}.${path} is int-or-string`);
    }
    if (kind === "map") assert.ok(node.additionalProperties, `${prefix}.${path} is a map`);
  }
  return paths.size;
}

Deno.test("the Deployment spec schema has every field of the zod DeploymentSpec", () => {
  const count = assertCovers(DeploymentSpec, at(schemaOf(deploymentCrd()), "spec"), "spec");
  assert.ok(count > 25, `walked ${count} paths`);
});

Deno.test("the Deployment status is DeploymentStatus without its NATS-only fields, with conditions, all optional", () => {
  const status = at(schemaOf(deploymentCrd()), "status");
  assertCovers(DeploymentResourceStatus, status, "status");
  assert.deepEqual(Object.keys(status.properties ?? {}), [
    "observedGeneration",
    "aggregate",
    "rollout",
    "conditions",
  ]);
  // A CR refused from its first generation has only its conditions.
  assert.equal(status.required, undefined);
});

Deno.test("the Device spec and status schemas have every field of their zod schemas", () => {
  assertCovers(DeviceSpec, at(schemaOf(deviceCrd()), "spec"), "spec");
  assertCovers(DeviceStatus, at(schemaOf(deviceCrd()), "status"), "status");
});

Deno.test("the drift check itself notices a missing field", () => {
  const schema = structuredClone(at(schemaOf(deploymentCrd()), "spec"));
  delete schema.properties?.score?.properties?.data?.properties?.services?.items?.properties?.image;
  assert.throws(() => assertCovers(DeploymentSpec, schema, "spec"), /image/);
});

// --- YAML -----------------------------------------------------------------------------

async function golden(name: string, text: string): Promise<void> {
  const url = new URL(name, FIXTURES);
  if (Deno.env.get("FLEET_UPDATE_GOLDEN") === "1") {
    await Deno.mkdir(FIXTURES, { recursive: true });
    await Deno.writeTextFile(url, text);
  }
  assert.equal(text, await Deno.readTextFile(url), `${name} is stale; see this file's header`);
}

Deno.test("deploymentCrd() matches fixtures/crds/deployment.yaml", async () => {
  await golden("deployment.yaml", crdYaml(deploymentCrd()));
});

Deno.test("deviceCrd() matches fixtures/crds/device.yaml", async () => {
  await golden("device.yaml", crdYaml(deviceCrd()));
});

Deno.test("crdsYaml() is both CRDs as two YAML documents", () => {
  const docs = YAML.parseAllDocuments(crdsYaml());
  assert.equal(docs.length, 2);
  assert.deepEqual(docs.map((d) => d.toJS()), [deploymentCrd(), deviceCrd()]);
});

Deno.test("crdsYaml() quotes words a YAML 1.1 reader (kubectl) would take for booleans", () => {
  const text = crdsYaml();
  assert.ok(text.includes('- "no"'));
  const docs = YAML.parseAllDocuments(text, { version: "1.1" }).map((d) => d.toJS());
  assert.deepEqual(docs, [deploymentCrd(), deviceCrd()]);
});
