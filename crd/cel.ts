/**
 * CEL for CRD validation rules: property names and string literals as the API server's CEL
 * sees them, and the per-variant requirements of a folded union as one CEL condition. Pure.
 * @module
 */
import type { StructuralSchema } from "./schema.ts";

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

export interface Requirement {
  /** CEL condition over `self`. */
  cel: string;
  /** What the user must set, for the message. */
  paths: string[];
}

/**
 * The requirements `variant` adds to `merged` (fields it requires that the merged node does
 * not), as one CEL conjunction over `expr`, descending into objects and arrays of objects.
 */
export function requirementsOf(
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
