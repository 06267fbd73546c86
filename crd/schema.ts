/**
 * The Kubernetes structural schema (the OpenAPI v3 subset CRDs accept): its node type, the
 * CRD-only metadata attached to zod schemas, and the key order every emitted node follows.
 * Shared by the converter (`converter.ts`), the CEL rules (`cel.ts`) and the checker
 * (`structural_check.ts`). Pure.
 * @module
 */
import * as z from "zod";

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

/** A JSON object, as the converter and the checker walk it. */
export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The dotted path of `key` under `path`, for messages. */
export function child(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Key order of every emitted node, so golden files are stable and readable. */
export const KEY_ORDER: readonly (keyof StructuralSchema)[] = [
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
