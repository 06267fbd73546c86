/**
 * Zod schema → Kubernetes structural OpenAPI v3 schema, for CustomResourceDefinitions.
 *
 * `z.toJSONSchema(..., { target: "openapi-3.0" })` is the starting point, but the API server
 * rejects what it produces for unions (a `oneOf` of complete objects), tuples, records of
 * unknown values and `$ref`s (DESIGN.md §8). `toStructural` rewrites that output into the
 * structural subset, and `structuralProblems` checks the result against the rules the API
 * server enforces, so tests can prove a generated CRD would be accepted. Pure.
 * @module
 */
import { z } from "zod";
import { canonicalJson } from "../core/spec_hash.ts";

/** The node types a structural schema may declare. */
export const SchemaTypes = ["object", "array", "string", "integer", "number", "boolean"] as const;
/** One of SchemaTypes. */
export type SchemaType = typeof SchemaTypes[number];

/** One `x-kubernetes-validations` entry: a CEL rule and what the user reads when it fails. */
export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
  fieldPath?: string;
}

/** A node of a Kubernetes structural schema (the subset of OpenAPI v3 CRDs accept). */
export interface StructuralSchema {
  description?: string;
  type?: SchemaType;
  format?: string;
  nullable?: boolean;
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  exclusiveMinimum?: boolean;
  maximum?: number;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  items?: StructuralSchema;
  properties?: Record<string, StructuralSchema>;
  required?: string[];
  additionalProperties?: StructuralSchema;
  "x-kubernetes-preserve-unknown-fields"?: true;
  "x-kubernetes-int-or-string"?: true;
  "x-kubernetes-embedded-resource"?: true;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-validations"?: ValidationRule[];
}

/** Extra keywords attached to zod schemas (by identity) before conversion, see zodToStructural. */
export type CrdMetadata = Partial<StructuralSchema>;

/** A zod registry of CRD-only constraints: maxItems for CEL cost, CEL rules, list types. */
export type CrdRegistry = z.core.$ZodRegistry<CrdMetadata>;

/** Creates an empty CrdRegistry. */
export function crdRegistry(): CrdRegistry {
  return z.registry<CrdMetadata>();
}

/** A zod schema that has no structural equivalent; `path` points at the offending node. */
export class UnstructuralSchemaError extends Error {
  override name = "UnstructuralSchemaError";
  constructor(readonly path: string, readonly problem: string) {
    super(`Cannot make the schema at ${path || "<root>"} structural: ${problem}`);
  }
}

/** Options of zodToStructural. */
export interface ZodToStructuralOptions {
  /** CRD-only keywords keyed on zod schema objects; merged into the nodes those schemas render. */
  metadata?: CrdRegistry;
}

/**
 * Renders a zod schema as a Kubernetes structural schema.
 *
 * Uses `io: "input"`: a field with a zod default is optional and carries `default`, which is
 * what a user may write and what the API server fills in (`"output"` would mark it required).
 * @throws UnstructuralSchemaError for what cannot be expressed (tuples of mixed types,
 * recursive schemas, unions of different scalar types, `not`)
 */
export function zodToStructural(
  schema: z.ZodType,
  options: ZodToStructuralOptions = {},
): StructuralSchema {
  const extra = options.metadata;
  const json = z.toJSONSchema(schema, {
    target: "openapi-3.0",
    io: "input",
    // Through `override`, not the `metadata` option: that would replace the global registry
    // and lose the schemas' own `.describe()` / `.meta()`.
    ...(extra
      ? {
        override: (ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }) => {
          const meta = extra.get(ctx.zodSchema as z.ZodType);
          if (meta) Object.assign(ctx.jsonSchema, meta);
        },
      }
      : {}),
  });
  return toStructural(json);
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function child(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Formats worth keeping: the ones the API server validates or uses to type CEL values. */
const KNOWN_FORMATS = new Set([
  "byte",
  "date",
  "date-time",
  "duration",
  "int32",
  "int64",
  "float",
  "double",
  "uuid",
  "email",
  "hostname",
  "ipv4",
  "ipv6",
  "cidr",
  "mac",
  "uri",
  "password",
]);

/** zod's `.int()` bounds: Number.MAX_SAFE_INTEGER says nothing to a reader of the CRD. */
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

/** Key order of every emitted node, so golden files are stable and readable. */
const KEY_ORDER: readonly (keyof StructuralSchema)[] = [
  "description",
  "type",
  "format",
  "nullable",
  "enum",
  "default",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "items",
  "properties",
  "required",
  "additionalProperties",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
];

function ordered(node: StructuralSchema): StructuralSchema {
  const out: Json = {};
  for (const key of KEY_ORDER) {
    if (node[key] !== undefined) out[key] = node[key];
  }
  return out as StructuralSchema;
}

/** Keywords copied as-is when present (after the checks of their own node type). */
const PLAIN_KEYS = [
  "description",
  "enum",
  "default",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
] as const;

/** Keywords that cannot be expressed at all. */
const UNSUPPORTED_KEYS = ["not", "if", "then", "else", "prefixItems", "patternProperties"];

/**
 * Rewrites an OpenAPI 3.0 schema (as `z.toJSONSchema` renders it) into a structural one:
 * `$ref`s inlined, `allOf` merged, unions folded (see foldUnion), tuple items and
 * `additionalProperties: false` removed, open payloads marked
 * `x-kubernetes-preserve-unknown-fields`, unknown keywords dropped.
 * @throws UnstructuralSchemaError naming the node that cannot be expressed
 */
export function toStructural(jsonSchema: unknown): StructuralSchema {
  if (!isObject(jsonSchema)) throw new UnstructuralSchemaError("", "not a schema object");
  const definitions: Json = {
    ...(isObject(jsonSchema.definitions) ? jsonSchema.definitions : {}),
    ...(isObject(jsonSchema.$defs) ? jsonSchema.$defs : {}),
  };
  return convert(jsonSchema, "", { definitions, resolving: [] });
}

interface Context {
  definitions: Json;
  /** `$ref`s being inlined along the current path, to refuse recursion. */
  resolving: string[];
}

function resolveRef(node: Json, path: string, ctx: Context): { node: Json; ctx: Context } {
  const ref = node.$ref;
  if (typeof ref !== "string") return { node, ctx };
  if (ctx.resolving.includes(ref)) {
    throw new UnstructuralSchemaError(
      path,
      `the schema is recursive (${ref}); it cannot be inlined`,
    );
  }
  const name = /^#\/(?:definitions|\$defs|components\/schemas)\/(.+)$/.exec(ref)?.[1];
  const target = name === undefined ? undefined : ctx.definitions[name];
  if (!isObject(target)) throw new UnstructuralSchemaError(path, `unresolvable $ref ${ref}`);
  const { $ref: _ref, ...siblings } = node;
  return {
    node: { ...target, ...siblings },
    ctx: { ...ctx, resolving: [...ctx.resolving, ref] },
  };
}

function convert(input: Json, path: string, outer: Context): StructuralSchema {
  const { node, ctx } = resolveRef(input, path, outer);
  for (const key of UNSUPPORTED_KEYS) {
    if (key in node) throw new UnstructuralSchemaError(path, `'${key}' has no structural form`);
  }
  if (Array.isArray(node.items)) {
    throw new UnstructuralSchemaError(path, "tuple items are not allowed; use an object");
  }
  const {
    allOf,
    oneOf,
    anyOf,
    definitions: _definitions,
    $defs: _defs,
    ...own
  } = node;

  if (Array.isArray(allOf)) {
    let merged: StructuralSchema | undefined;
    allOf.forEach((member, i) => {
      if (!isObject(member)) {
        throw new UnstructuralSchemaError(path, "allOf member is not a schema");
      }
      const converted = convert(member, `${path}[allOf ${i}]`, ctx);
      merged = merged === undefined ? converted : intersect(merged, converted, path);
    });
    if (merged === undefined) throw new UnstructuralSchemaError(path, "an empty allOf");
    return ordered(withNodeKeys(merged, junctorBase(own, path, ctx)));
  }
  const variants = Array.isArray(oneOf) ? oneOf : Array.isArray(anyOf) ? anyOf : undefined;
  if (variants !== undefined) {
    const members = variants.map((member, i) => {
      if (!isObject(member)) {
        throw new UnstructuralSchemaError(path, "union member is not a schema");
      }
      return { member, index: i };
    });
    return ordered(foldUnion(own, members, path, ctx));
  }
  return ordered(convertOwn(own, path, ctx));
}

/** Converts a node without logical junctors. */
function convertOwn(node: Json, path: string, ctx: Context): StructuralSchema {
  const out: Json = {};
  let type = node.type;
  let nullable = node.nullable === true;
  if (Array.isArray(type)) {
    // JSON Schema spells "string or null" as a type list.
    nullable ||= type.includes("null");
    const rest = type.filter((t) => t !== "null");
    if (rest.length !== 1) {
      throw new UnstructuralSchemaError(path, `a value of several types (${rest.join(", ")})`);
    }
    type = rest[0];
  }
  const onlyNull = Array.isArray(node.enum) && node.enum.length > 0 &&
    node.enum.every((v) => v === null);
  if (type === "null" || onlyNull) {
    throw new UnstructuralSchemaError(path, "a value that can only be null");
  }
  if (type !== undefined && !(SchemaTypes as readonly unknown[]).includes(type)) {
    throw new UnstructuralSchemaError(path, `unknown type ${JSON.stringify(type)}`);
  }

  for (const key of PLAIN_KEYS) {
    if (node[key] !== undefined) out[key] = node[key];
  }
  if (node.const !== undefined) out.enum = [node.const];
  if (nullable) out.nullable = true;
  // A null default is what the API server does anyway; stated, it only confuses `explain`.
  if (out.default === null) delete out.default;
  if (type !== undefined) out.type = type;

  if (type === "string") {
    const format = node.format;
    if (typeof format === "string" && KNOWN_FORMATS.has(format)) {
      out.format = format;
      // zod spells date-time as a long regex too; the API server checks the format itself.
      if (format === "date-time" || format === "date") delete out.pattern;
    }
  }
  if (type === "integer" || type === "number") {
    if (out.maximum === SAFE_MAX) delete out.maximum;
    if (out.minimum === -SAFE_MAX) delete out.minimum;
  }

  if (type === "array") {
    const items = node.items;
    out.items = isObject(items) ? convert(items, child(path, "items"), ctx) : openNode();
    if (node.uniqueItems === true) {
      // uniqueItems is forbidden in CRDs; a set of scalars is the Kubernetes spelling.
      const itemType = (out.items as StructuralSchema).type;
      if (itemType !== undefined && itemType !== "object" && itemType !== "array") {
        out["x-kubernetes-list-type"] ??= "set";
      }
    }
  }

  if (type === "object" || node.properties !== undefined) {
    out.type = "object";
    const properties: Record<string, StructuralSchema> = {};
    if (isObject(node.properties)) {
      for (const [name, property] of Object.entries(node.properties)) {
        if (!isObject(property)) {
          throw new UnstructuralSchemaError(child(path, name), "not a schema object");
        }
        properties[name] = convert(property, child(path, name), ctx);
      }
    }
    const required = Array.isArray(node.required)
      ? node.required.filter((r): r is string => typeof r === "string" && r in properties)
      : [];
    const extra = node.additionalProperties;
    let map: StructuralSchema | undefined;
    if (isObject(extra)) map = convert(extra, child(path, "additionalProperties"), ctx);
    else if (extra === true) map = openNode();
    // additionalProperties: false is the default for a structural schema (unknown fields are
    // pruned), and the API server forbids it beside properties: drop it.

    if (map !== undefined && isOpen(map)) {
      // Record of unknown / passthrough object: the payload is really open.
      out["x-kubernetes-preserve-unknown-fields"] = true;
    } else if (map !== undefined) {
      if (Object.keys(properties).length > 0) {
        throw new UnstructuralSchemaError(
          path,
          "an object with both fixed properties and typed extra keys (catchall)",
        );
      }
      out.additionalProperties = map;
    }
    if (Object.keys(properties).length > 0) out.properties = properties;
    if (required.length > 0) out.required = required;
  }

  if (out.type === undefined && out["x-kubernetes-int-or-string"] !== true) {
    // `{}`: z.unknown() / z.any(), any JSON value.
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
  return out as StructuralSchema;
}

function openNode(): StructuralSchema {
  return { "x-kubernetes-preserve-unknown-fields": true };
}

/** A node that accepts any value: no type, unknown fields kept. */
function isOpen(node: StructuralSchema): boolean {
  return node.type === undefined && node["x-kubernetes-preserve-unknown-fields"] === true &&
    node["x-kubernetes-int-or-string"] === undefined;
}

/** allOf: both constraints hold. Objects merge their properties; other conflicts are refused. */
function intersect(a: StructuralSchema, b: StructuralSchema, path: string): StructuralSchema {
  if (isOpen(a)) return b;
  if (isOpen(b)) return a;
  if (a.type !== b.type) {
    throw new UnstructuralSchemaError(path, `allOf of ${a.type} and ${b.type}`);
  }
  const out: StructuralSchema = { ...a };
  for (const [key, value] of Object.entries(b) as [keyof StructuralSchema, unknown][]) {
    if (key === "properties" || key === "required" || key === "x-kubernetes-validations") continue;
    const mine = a[key];
    if (mine !== undefined && !same(mine, value) && key !== "description") {
      throw new UnstructuralSchemaError(path, `allOf members disagree on '${key}'`);
    }
    (out as Json)[key] = mine ?? value;
  }
  if (a.properties || b.properties) {
    const properties: Record<string, StructuralSchema> = { ...a.properties };
    for (const [name, property] of Object.entries(b.properties ?? {})) {
      const existing = properties[name];
      properties[name] = existing ? intersect(existing, property, child(path, name)) : property;
    }
    out.properties = properties;
  }
  const required = [...new Set([...(a.required ?? []), ...(b.required ?? [])])];
  if (required.length > 0) out.required = required;
  const rules = [
    ...(a["x-kubernetes-validations"] ?? []),
    ...(b["x-kubernetes-validations"] ?? []),
  ];
  if (rules.length > 0) out["x-kubernetes-validations"] = rules;
  return out;
}

/**
 * Folds a `oneOf`/`anyOf` into one structural node.
 *
 * - `null` members become `nullable: true`.
 * - Object members (a discriminated union) become ONE object: the union of their properties,
 *   required only what every variant requires, the discriminator (a property each variant
 *   requires with a distinct single-value enum) an enum of all values, and each variant's
 *   extra requirements a CEL rule `self.<disc> != '<value>' || has(...)`. Without a
 *   discriminator, one rule says the object must satisfy some variant's requirements.
 * - `string | integer` becomes `x-kubernetes-int-or-string`.
 * - Scalars of one type merge (enums united, bounds widened).
 * Keywords on the union node itself (description, CEL rules from the registry, default)
 * are kept on the folded node.
 */
function foldUnion(
  own: Json,
  members: { member: Json; index: number }[],
  path: string,
  ctx: Context,
): StructuralSchema {
  const base = junctorBase(own, path, ctx);
  let nullable = base.nullable === true;
  const variants: StructuralSchema[] = [];
  for (const { member, index } of members) {
    const isNull = member.type === "null" ||
      (Array.isArray(member.enum) && member.enum.length > 0 &&
        member.enum.every((v) => v === null));
    if (isNull) {
      nullable = true;
      continue;
    }
    variants.push(convert(member, `${path}[variant ${index}]`, ctx));
  }
  if (variants.length === 0) throw new UnstructuralSchemaError(path, "an empty union");

  let folded: StructuralSchema;
  const types = new Set(variants.map((v) => v.type));
  if (variants.some(isOpen)) {
    folded = openNode();
  } else if (types.size === 2 && types.has("string") && types.has("integer")) {
    folded = { "x-kubernetes-int-or-string": true };
  } else if (types.size !== 1) {
    throw new UnstructuralSchemaError(
      path,
      `a union of different types (${[...types].join(", ")}); Kubernetes needs one type per field`,
    );
  } else if (variants.length === 1) {
    folded = variants[0]!;
  } else if (types.has("object")) {
    folded = foldObjects(variants, path);
  } else {
    folded = variants.reduce((a, b) => widen(a, b, path));
  }

  const out = withNodeKeys(folded, base);
  if (nullable) out.nullable = true;
  return out;
}

/** The keywords written on a junctor node itself (description, registry metadata, default). */
function junctorBase(own: Json, path: string, ctx: Context): StructuralSchema {
  const base = convertOwn(own, path, ctx);
  // convertOwn marks a typeless node open; here the members decide what the node is.
  if (own["x-kubernetes-preserve-unknown-fields"] !== true) {
    delete base["x-kubernetes-preserve-unknown-fields"];
  }
  return base;
}

/** `folded` plus the junctor node's own keywords; CEL rules of both are kept. */
function withNodeKeys(folded: StructuralSchema, base: StructuralSchema): StructuralSchema {
  const out: StructuralSchema = { ...folded };
  for (const key of PLAIN_KEYS) {
    if (key !== "x-kubernetes-validations" && base[key] !== undefined) {
      (out as Json)[key] = base[key];
    }
  }
  if (base.nullable) out.nullable = true;
  const rules = [
    ...(folded["x-kubernetes-validations"] ?? []),
    ...(base["x-kubernetes-validations"] ?? []),
  ];
  if (rules.length > 0) out["x-kubernetes-validations"] = rules;
  return out;
}

/** Property each variant requires, with a distinct single string value: the discriminator. */
function findDiscriminator(variants: StructuralSchema[]): string | undefined {
  const first = variants[0];
  for (const name of Object.keys(first?.properties ?? {})) {
    const values = variants.map((v) => {
      const p = v.properties?.[name];
      return v.required?.includes(name) && p?.enum?.length === 1 && typeof p.enum[0] === "string"
        ? p.enum[0]
        : undefined;
    });
    if (values.every((v) => v !== undefined) && new Set(values).size === values.length) return name;
  }
  return undefined;
}

interface Requirement {
  /** CEL condition over `self`. */
  cel: string;
  /** What the user must set, for the message. */
  paths: string[];
}

function foldObjects(variants: StructuralSchema[], path: string): StructuralSchema {
  const merged = variants.reduce((a, b) => widen(a, b, path));
  const discriminator = findDiscriminator(variants);
  const requirements = variants.map((v) => requirementsOf(v, merged, "self", "", 0));
  const rules: ValidationRule[] = [];
  if (discriminator !== undefined) {
    const field = celField(discriminator);
    variants.forEach((variant, i) => {
      const needs = requirements[i]!;
      if (needs.cel === "") return;
      const value = String(variant.properties?.[discriminator]?.enum?.[0]);
      rules.push({
        rule: `self.${field} != ${celString(value)} || (${needs.cel})`,
        message: `when ${discriminator} is "${value}", ${needs.paths.join(", ")} must be set`,
      });
    });
  } else if (requirements.every((r) => r.cel !== "")) {
    rules.push({
      rule: requirements.map((r) => `(${r.cel})`).join(" || "),
      message: `must have the fields of one of its forms: ${
        requirements.map((r) => r.paths.join(" and ")).join("; or ")
      }`,
    });
  }
  const out: StructuralSchema = { ...merged };
  if (rules.length > 0) out["x-kubernetes-validations"] = rules;
  return out;
}

/**
 * The requirements `variant` adds to `merged` (fields it requires that the merged node does
 * not), as one CEL conjunction over `expr`, descending into objects and arrays of objects.
 */
function requirementsOf(
  variant: StructuralSchema,
  merged: StructuralSchema,
  expr: string,
  prefix: string,
  depth: number,
): Requirement {
  const terms: string[] = [];
  const paths: string[] = [];
  const mergedRequired = new Set(merged.required ?? []);
  const variantRequired = new Set(variant.required ?? []);
  for (const name of variantRequired) {
    if (mergedRequired.has(name)) continue;
    terms.push(`has(${expr}.${celField(name)})`);
    paths.push(prefix + name);
  }
  for (const [name, property] of Object.entries(variant.properties ?? {})) {
    const target = merged.properties?.[name];
    if (target === undefined) continue;
    const access = `${expr}.${celField(name)}`;
    let inner: Requirement | undefined;
    let term = "";
    if (property.type === "object" && target.type === "object") {
      inner = requirementsOf(property, target, access, `${prefix}${name}.`, depth);
      term = inner.cel;
    } else if (
      property.type === "array" && target.type === "array" && property.items?.type === "object" &&
      target.items?.type === "object"
    ) {
      const item = `e${depth}`;
      inner = requirementsOf(property.items, target.items, item, `${prefix}${name}[].`, depth + 1);
      term = inner.cel === "" ? "" : `${access}.all(${item}, ${inner.cel})`;
    }
    if (inner === undefined || term === "") continue;
    terms.push(variantRequired.has(name) ? term : `(!has(${access}) || ${term})`);
    paths.push(...inner.paths);
  }
  return { cel: terms.join(" && "), paths };
}

const LOWER_BOUNDS = ["minLength", "minItems", "minProperties", "minimum"] as const;
const UPPER_BOUNDS = ["maxLength", "maxItems", "maxProperties", "maximum"] as const;

/**
 * A node accepting what either `a` or `b` accepts (as close as one structural node gets):
 * same type required; enums united; bounds widened; differing patterns, formats, defaults
 * and list types dropped; objects merged property by property, required intersected.
 * @throws UnstructuralSchemaError when the types differ or the nodes carry different CEL rules
 * (a rule written for one variant cannot be told which variant it is in)
 */
function widen(a: StructuralSchema, b: StructuralSchema, path: string): StructuralSchema {
  if (same(a, b)) return a;
  if (isOpen(a) || isOpen(b)) return openNode();
  if (a.type !== b.type) {
    throw new UnstructuralSchemaError(
      path,
      `union variants give it different types (${a.type}, ${b.type})`,
    );
  }
  if (!same(a["x-kubernetes-validations"] ?? [], b["x-kubernetes-validations"] ?? [])) {
    throw new UnstructuralSchemaError(
      path,
      "union variants carry different CEL rules here; move them to the union itself",
    );
  }
  const out: Json = { type: a.type };
  const copyIfSame = [
    "description",
    "format",
    "pattern",
    "default",
    "multipleOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
  ] as const;
  for (const key of copyIfSame) {
    if (a[key] !== undefined && same(a[key], b[key])) out[key] = a[key];
  }
  if (a.enum && b.enum) {
    out.enum = [...a.enum, ...b.enum.filter((v) => !a.enum!.some((w) => same(v, w)))];
  }
  for (const key of LOWER_BOUNDS) {
    const x = a[key];
    const y = b[key];
    if (x !== undefined && y !== undefined) out[key] = Math.min(x, y);
  }
  for (const key of UPPER_BOUNDS) {
    const x = a[key];
    const y = b[key];
    if (x !== undefined && y !== undefined) out[key] = Math.max(x, y);
  }
  if (a.nullable || b.nullable) out.nullable = true;
  if (a["x-kubernetes-preserve-unknown-fields"] || b["x-kubernetes-preserve-unknown-fields"]) {
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
  if (a.items && b.items) out.items = widen(a.items, b.items, child(path, "items"));
  if (a.type === "object") {
    if ((a.additionalProperties === undefined) !== (b.additionalProperties === undefined)) {
      throw new UnstructuralSchemaError(path, "union variants mix a map and a fixed object");
    }
    if (a.additionalProperties && b.additionalProperties) {
      out.additionalProperties = widen(
        a.additionalProperties,
        b.additionalProperties,
        child(path, "additionalProperties"),
      );
    }
    const properties: Record<string, StructuralSchema> = {};
    for (const [name, p] of Object.entries(a.properties ?? {})) {
      const q = b.properties?.[name];
      properties[name] = q ? widen(p, q, child(path, name)) : p;
    }
    for (const [name, q] of Object.entries(b.properties ?? {})) properties[name] ??= q;
    if (Object.keys(properties).length > 0) out.properties = properties;
    const required = (a.required ?? []).filter((r) => b.required?.includes(r));
    if (required.length > 0) out.required = required;
  }
  return ordered(out as StructuralSchema);
}

/** CEL reserved words, which the API server exposes as `__<word>__`. */
const CEL_RESERVED = new Set([
  "true",
  "false",
  "null",
  "in",
  "as",
  "break",
  "const",
  "continue",
  "else",
  "for",
  "function",
  "if",
  "import",
  "let",
  "loop",
  "package",
  "namespace",
  "return",
  "var",
  "void",
  "while",
]);

/** A property name as CEL sees it (the API server's escaping of `_`, `.`, `-`, `/`). */
export function celField(name: string): string {
  if (CEL_RESERVED.has(name)) return `__${name}__`;
  return name.replaceAll("__", "__underscores__").replaceAll(".", "__dot__")
    .replaceAll("-", "__dash__").replaceAll("/", "__slash__");
}

/**
 * A CEL string literal for `text`: double-quoted, or single-quoted when that avoids escaping
 * (JSON's escapes are valid CEL escapes).
 */
export function celString(text: string): string {
  if (text.includes('"') && !text.includes("'")) {
    return `'${JSON.stringify(text).slice(1, -1).replaceAll('\\"', '"')}'`;
  }
  return JSON.stringify(text);
}

// ---------------------------------------------------------------------------------------------
// Checker

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
