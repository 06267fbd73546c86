import type { z } from "zod";

type Issue = z.ZodError["issues"][number];

/** An issue's message; a record key issue nests the real reason under "Invalid key in record". */
function messageOf(issue: Issue): string {
  if (
    (issue.code === "invalid_key" || issue.code === "invalid_element") && issue.issues.length > 0
  ) {
    return issue.issues.map(messageOf).join("; ");
  }
  // zod says "Invalid input: expected string, received undefined" for a missing field.
  if (issue.code === "invalid_type" && / received undefined$/.test(issue.message)) {
    return `is required (${issue.expected})`;
  }
  return issue.message;
}

/** Renders zod issues as one readable line: `spec.score.data.services.0.image: Required; ...`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join(".");
      return path ? `${path}: ${messageOf(issue)}` : messageOf(issue);
    })
    .join("; ");
}

/** A value that does not match its wire schema; `what` says which value it was. */
export class WireFormatError extends Error {
  override name = "WireFormatError";
  constructor(readonly what: string, readonly detail: string, options?: ErrorOptions) {
    super(`Invalid ${what}: ${detail}`, options);
  }
}

/** Parses `input` with `schema`, throwing a WireFormatError naming `what` on failure. */
export function parseWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new WireFormatError(what, describeIssues(result.error));
  return result.data;
}

/** Parses JSON bytes or text, then validates; malformed JSON is a WireFormatError too. */
export function parseJsonWith<S extends z.ZodType>(
  schema: S,
  input: Uint8Array | string,
  what: string,
): z.infer<S> {
  const text = typeof input === "string" ? input : new TextDecoder().decode(input);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new WireFormatError(what, `not valid JSON (${reason})`, { cause });
  }
  return parseWith(schema, json, what);
}
