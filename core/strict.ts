/**
 * Strict field validation for what a person writes (a Deployment file, the CLI's flags), as
 * kubectl's `--validate=strict`: a key the schema does not declare is refused with its path,
 * so a typo such as `restartPolicyy` is not silently dropped.
 *
 * The wire schemas stay lenient (DESIGN.md §3: a newer writer's payload must parse in an older
 * reader), so strictness is not a second set of schemas but a walk of the input against the
 * keys the one schema declares. Pure.
 * @module
 */
import * as z from "zod";
import { describeIssues, fieldPath, WireFormatError } from "./errors.ts";

/**
 * The paths of the object keys in `input` that `schema` does not declare, in input order,
 * e.g. `spec.score.data.services[0].restartPolicyy`.
 *
 * Objects, arrays, records, optional/default/nullable wrappers, pipes and unions are followed;
 * a loose object (`z.looseObject`, a catchall) and `z.unknown()` accept any key. A union is
 * followed into the member the input is (the discriminator's, else the first that parses);
 * input of the wrong type is left to the schema's own errors.
 */
export function unknownFields(schema: z.ZodType, input: unknown): string[] {
  return walk(schema, input, []).map(fieldPath);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function walk(schema: z.ZodType, input: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (
    schema instanceof z.ZodOptional || schema instanceof z.ZodNullable ||
    schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodReadonly || schema instanceof z.ZodCatch ||
    schema instanceof z.ZodNonOptional
  ) {
    return walk(schema.unwrap() as z.ZodType, input, path);
  }
  if (schema instanceof z.ZodPipe) return walk(schema.in as z.ZodType, input, path);
  if (schema instanceof z.ZodLazy) return walk(schema.unwrap() as z.ZodType, input, path);
  if (schema instanceof z.ZodArray) {
    if (!Array.isArray(input)) return [];
    return input.flatMap((item, i) => walk(schema.element as z.ZodType, item, [...path, i]));
  }
  if (schema instanceof z.ZodRecord) {
    if (!isRecord(input)) return [];
    return Object.entries(input).flatMap(([key, value]) =>
      walk(schema.valueType as z.ZodType, value, [...path, key])
    );
  }
  if (schema instanceof z.ZodUnion) return walkUnion(schema, input, path);
  if (schema instanceof z.ZodObject) {
    if (!isRecord(input)) return [];
    const shape = schema.shape as Record<string, z.ZodType>;
    const catchall = schema.def.catchall as z.ZodType | undefined;
    return Object.entries(input).flatMap(([key, value]) => {
      const field = Object.hasOwn(shape, key) ? shape[key] : catchall;
      if (field === undefined) return [[...path, key]];
      // z.strictObject: zod itself refuses the key, with its own message.
      if (field instanceof z.ZodNever) return [];
      return walk(field, value, [...path, key]);
    });
  }
  return [];
}

function walkUnion(
  schema: z.ZodUnion,
  input: unknown,
  path: PropertyKey[],
): PropertyKey[][] {
  const options = schema.options as readonly z.ZodType[];
  const discriminator = (schema.def as { discriminator?: string }).discriminator;
  const member = discriminator !== undefined && isRecord(input)
    ? options.find((option) =>
      option instanceof z.ZodObject &&
      (option.shape as Record<string, z.ZodType>)[discriminator]?.safeParse(
        input[discriminator],
      ).success
    )
    : options.find((option) => option.safeParse(input).success);
  return member === undefined ? [] : walk(member, input, path);
}

/**
 * `parseWith` for what a person wrote: the schema's own checks, and every key it does not
 * declare refused as `<path>: unknown field`.
 * @throws WireFormatError naming `what`, each unknown field's path and each invalid value
 */
export function parseStrictWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.infer<S> {
  const unknown = unknownFields(schema, input).map((path) => `${path}: unknown field`);
  const result = schema.safeParse(input);
  const problems = result.success ? unknown : [...unknown, describeIssues(result.error)];
  if (problems.length > 0) throw new WireFormatError(what, problems.join("; "));
  return result.data as z.infer<S>;
}
