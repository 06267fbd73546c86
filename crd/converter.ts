/**
 * Zod schema → Kubernetes structural OpenAPI v3 schema, for CustomResourceDefinitions.
 *
 * `z.toJSONSchema(..., { target: "openapi-3.0" })` is the starting point, but the API server
 * rejects what it produces for unions (a `oneOf` of complete objects), tuples, records of
 * unknown values and `$ref`s (DESIGN.md §8). `toStructural` rewrites that output into the
 * structural subset, (`structural_check.ts` checks the result against the rules the API server
 * enforces, so tests can prove a generated CRD would be accepted). Pure.
 * @module
 */
import * as z from "zod";
import { canonicalJson } from "../core/spec_hash.ts";
import { celField, celString, requirementsOf } from "./cel.ts";
import {
  child,
  type CrdRegistry,
  isObject,
  type Json,
  KEY_ORDER,
  SchemaTypes,
  type StructuralSchema,
  type ValidationRule,
} from "./schema.ts";

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

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
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
