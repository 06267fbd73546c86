/**
 * The rules the API server enforces on a CRD's schema, as a pure check: tests prove that a
 * generated CRD would be accepted before any API server sees it.
 * @module
 */
import { child, isObject, type Json, KEY_ORDER, SchemaTypes } from "./schema.ts";

const JUNCTORS = ["oneOf", "anyOf", "allOf", "not"] as const;

/** Keywords a CRD schema never accepts. */
const FORBIDDEN_KEYS = [
  "$ref",
  "$schema",
  "definitions",
  "$defs",
  "id",
  "$id",
  "dependencies",
  "patternProperties",
  "additionalItems",
  "prefixItems",
  "const",
];

/** Keywords allowed on a schema node (anything else is a problem). */
const ALLOWED_KEYS = new Set<string>([
  ...KEY_ORDER,
  ...JUNCTORS,
  "title",
  "example",
  "externalDocs",
]);

/** Keywords that may not appear inside a logical junctor. */
const NOT_IN_JUNCTOR = ["type", "description", "default", "nullable", "additionalProperties"];

/**
 * What makes `schema` not a Kubernetes structural schema (empty when it is one), one line per
 * problem with its path. Checks: every node has a known type (or preserves unknown fields or
 * is int-or-string); arrays have one `items` schema; no type, description, default, nullable or
 * additionalProperties inside oneOf/anyOf/allOf/not, and properties/items there also declared
 * outside; no additionalProperties beside properties, nor `false`; no $ref, definitions, tuples,
 * uniqueItems; `metadata` restricted to name/generateName at the root; list-type map keys
 * required scalar properties; CEL rules non-empty, messages on one line, brackets balanced.
 * @param schema the `openAPIV3Schema` of a CRD version (its root is a resource root)
 */
export function structuralProblems(schema: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(schema)) return ["<root>: not a schema object"];
  if (schema.type !== "object") problems.push("<root>: the root must have type object");
  if (schema.additionalProperties !== undefined) {
    problems.push("<root>: additionalProperties is not allowed at the root of a resource");
  }
  checkNode(schema, "", problems);
  const metadata = isObject(schema.properties) ? schema.properties.metadata : undefined;
  if (isObject(metadata)) checkMetadata(metadata, problems);
  return problems;
}

function where(path: string): string {
  return path || "<root>";
}

function checkMetadata(metadata: Json, problems: string[]): void {
  for (const key of Object.keys(metadata)) {
    if (key !== "type" && key !== "properties") {
      problems.push(`metadata: only restrictions on name and generateName are allowed, not ${key}`);
    }
  }
  if (isObject(metadata.properties)) {
    for (const name of Object.keys(metadata.properties)) {
      if (name !== "name" && name !== "generateName") {
        problems.push(`metadata.${name}: only name and generateName may be specified`);
      }
    }
  }
}

function checkNode(node: Json, path: string, problems: string[]): void {
  const at = where(path);
  for (const key of Object.keys(node)) {
    if (FORBIDDEN_KEYS.includes(key)) problems.push(`${at}: '${key}' is not allowed in a CRD`);
    else if (!ALLOWED_KEYS.has(key)) problems.push(`${at}: unknown keyword '${key}'`);
  }
  const type = node.type;
  const open = node["x-kubernetes-preserve-unknown-fields"];
  const intOrString = node["x-kubernetes-int-or-string"] === true;
  if (open !== undefined && open !== true) {
    problems.push(`${at}: x-kubernetes-preserve-unknown-fields must be true when set`);
  }
  if (type === undefined) {
    if (open !== true && !intOrString) {
      problems.push(`${at}: every node needs a type (or x-kubernetes-preserve-unknown-fields)`);
    }
  } else if (!(SchemaTypes as readonly unknown[]).includes(type)) {
    problems.push(`${at}: type ${JSON.stringify(type)} is not one of ${SchemaTypes.join(", ")}`);
  }
  if (intOrString && type !== undefined) {
    problems.push(`${at}: x-kubernetes-int-or-string must not have a type`);
  }
  if (node.default === null) problems.push(`${at}: default must not be null`);
  if (node.enum !== undefined && (!Array.isArray(node.enum) || node.enum.length === 0)) {
    problems.push(`${at}: enum must be a non-empty list`);
  }
  if (node.uniqueItems === true) problems.push(`${at}: uniqueItems is not allowed; use a set`);

  const properties = node.properties;
  const extra = node.additionalProperties;
  if (properties !== undefined) {
    if (!isObject(properties)) problems.push(`${at}: properties must be an object`);
    else {
      if (type !== "object") problems.push(`${at}: properties on a node that is not an object`);
      for (const [name, p] of Object.entries(properties)) {
        if (isObject(p)) checkNode(p, child(path, name), problems);
        else problems.push(`${child(path, name)}: not a schema object`);
      }
    }
  }
  if (extra === false) {
    problems.push(`${at}: additionalProperties: false is not allowed (unknown fields are pruned)`);
  } else if (extra !== undefined) {
    if (properties !== undefined) {
      problems.push(`${at}: additionalProperties and properties are mutually exclusive`);
    }
    if (type !== "object") problems.push(`${at}: additionalProperties on a non-object`);
    if (isObject(extra)) checkNode(extra, child(path, "additionalProperties"), problems);
  }
  if (Array.isArray(node.items)) {
    problems.push(`${at}: items must be one schema, not a tuple`);
  } else if (isObject(node.items)) {
    if (type !== "array") problems.push(`${at}: items on a node that is not an array`);
    checkNode(node.items, child(path, "items"), problems);
  } else if (type === "array") {
    problems.push(`${at}: an array needs an items schema`);
  }
  if (Array.isArray(node.required)) {
    for (const name of node.required) {
      if (!isObject(properties) || typeof name !== "string" || !(name in properties)) {
        problems.push(`${at}: required field ${JSON.stringify(name)} is not a property`);
      }
    }
  }
  checkListType(node, at, problems);
  checkRules(node["x-kubernetes-validations"], at, problems);
  for (const junctor of JUNCTORS) {
    const members = node[junctor];
    if (members === undefined) continue;
    const list = junctor === "not" ? [members] : Array.isArray(members) ? members : [members];
    list.forEach((member, i) => {
      if (!isObject(member)) problems.push(`${at}: ${junctor} member is not a schema`);
      else checkJunctorMember(member, node, `${at}.${junctor}[${i}]`, intOrString, problems);
    });
  }
}

function checkJunctorMember(
  member: Json,
  outer: Json,
  at: string,
  intOrString: boolean,
  problems: string[],
): void {
  for (const key of NOT_IN_JUNCTOR) {
    // The one exception: `anyOf: [{type: integer}, {type: string}]` under int-or-string.
    if (key === "type" && intOrString) continue;
    if (key in member) problems.push(`${at}: '${key}' is not allowed inside a logical junctor`);
  }
  for (const key of Object.keys(member)) {
    if (key.startsWith("x-kubernetes-")) {
      problems.push(`${at}: '${key}' is not allowed inside a logical junctor`);
    }
  }
  if (isObject(member.properties)) {
    const declared = isObject(outer.properties) ? outer.properties : {};
    for (const [name, p] of Object.entries(member.properties)) {
      const outside = declared[name];
      if (!isObject(outside)) {
        problems.push(`${at}.properties.${name}: not also declared outside the junctor`);
      } else if (isObject(p)) {
        checkJunctorMember(p, outside, `${at}.properties.${name}`, false, problems);
      }
    }
  }
  if (member.items !== undefined) {
    if (!isObject(outer.items)) problems.push(`${at}.items: not also declared outside the junctor`);
    else if (isObject(member.items)) {
      checkJunctorMember(member.items, outer.items, `${at}.items`, false, problems);
    }
  }
  for (const junctor of JUNCTORS) {
    const nested = member[junctor];
    const list = nested === undefined ? [] : Array.isArray(nested) ? nested : [nested];
    list.forEach((m, i) => {
      if (isObject(m)) {
        checkJunctorMember(m, outer, `${at}.${junctor}[${i}]`, intOrString, problems);
      }
    });
  }
}

function checkListType(node: Json, at: string, problems: string[]): void {
  const listType = node["x-kubernetes-list-type"];
  const keys = node["x-kubernetes-list-map-keys"];
  if (listType === undefined) {
    if (keys !== undefined) problems.push(`${at}: x-kubernetes-list-map-keys needs list-type map`);
    return;
  }
  if (node.type !== "array") problems.push(`${at}: x-kubernetes-list-type on a non-array`);
  const items = isObject(node.items) ? node.items : {};
  if (listType === "set" && (items.type === "object" || items.type === "array")) {
    problems.push(`${at}: a list-type set needs scalar items`);
  }
  if (listType === "map") {
    if (!Array.isArray(keys) || keys.length === 0) {
      problems.push(`${at}: a list-type map needs x-kubernetes-list-map-keys`);
      return;
    }
    const props = isObject(items.properties) ? items.properties : {};
    const required = Array.isArray(items.required) ? items.required : [];
    for (const key of keys) {
      const p = props[key];
      if (!isObject(p)) {
        problems.push(`${at}: list map key ${JSON.stringify(key)} is not an item property`);
        continue;
      }
      if (!required.includes(key) && p.default === undefined) {
        problems.push(`${at}: list map key ${JSON.stringify(key)} must be required or defaulted`);
      }
      if (p.type === "object" || p.type === "array") {
        problems.push(`${at}: list map key ${JSON.stringify(key)} must be a scalar`);
      }
    }
  } else if (listType !== "atomic" && listType !== "set") {
    problems.push(`${at}: unknown x-kubernetes-list-type ${JSON.stringify(listType)}`);
  }
}

function checkRules(rules: unknown, at: string, problems: string[]): void {
  if (rules === undefined) return;
  if (!Array.isArray(rules)) {
    problems.push(`${at}: x-kubernetes-validations must be a list`);
    return;
  }
  for (const rule of rules) {
    if (!isObject(rule) || typeof rule.rule !== "string" || rule.rule.trim() === "") {
      problems.push(`${at}: a validation rule needs a non-empty 'rule'`);
      continue;
    }
    for (const key of ["message", "messageExpression"] as const) {
      const text = rule[key];
      if (text === undefined) continue;
      if (typeof text !== "string" || text.trim() === "" || /[\r\n]/.test(text)) {
        problems.push(
          `${at}: rule ${JSON.stringify(rule.rule)}: ${key} must be one non-empty line`,
        );
      }
    }
    const syntax = celBracketProblem(rule.rule);
    if (syntax) problems.push(`${at}: rule ${JSON.stringify(rule.rule)}: ${syntax}`);
    if (typeof rule.messageExpression === "string") {
      const msg = celBracketProblem(rule.messageExpression);
      if (msg) problems.push(`${at}: messageExpression of ${JSON.stringify(rule.rule)}: ${msg}`);
    }
  }
}

/** Unbalanced brackets or an unterminated string literal: the CEL typos a test can catch. */
export function celBracketProblem(expression: string): string | undefined {
  const closing: Record<string, string> = { "(": ")", "[": "]", "{": "}" };
  const stack: string[] = [];
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i]!;
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < expression.length && expression[j] !== ch) j += expression[j] === "\\" ? 2 : 1;
      if (j >= expression.length) return `unterminated string literal at ${i}`;
      i = j;
    } else if (ch in closing) {
      stack.push(closing[ch]!);
    } else if (ch === ")" || ch === "]" || ch === "}") {
      if (stack.pop() !== ch) return `unbalanced '${ch}' at ${i}`;
    }
  }
  return stack.length > 0 ? `missing '${stack.at(-1)}'` : undefined;
}
