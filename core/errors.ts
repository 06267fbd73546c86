import type * as z from "zod";

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

/** A field's path as kubectl writes it: `spec.score.data.services[0].image`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((key, i) =>
    typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`
  ).join("");
}

/** Renders zod issues as one readable line: `spec.score.data.services[0].image: Required; ...`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = fieldPath(issue.path);
      return path ? `${path}: ${messageOf(issue)}` : messageOf(issue);
    })
    .join("; ");
}

/**
 * What went wrong, as far as the exit code is concerned: `usage` is the user's input (a flag,
 * a name, a file they wrote) and asking differently fixes it; `failure` is everything else.
 */
export const ErrorKinds = ["usage", "failure"] as const;
export type ErrorKind = typeof ErrorKinds[number];

/** The exit codes of DESIGN.md §6. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

/** The one mapping from error kind to exit code. */
const exitCodes: Record<ErrorKind, number> = { usage: ExitCode.usage, failure: ExitCode.failure };

/**
 * The base of Fleet's own errors. Its `kind` decides the exit code (see {@link exitCodeOf}); the
 * message is the one readable line the user sees, so subclasses keep theirs specific.
 */
export class FleetError extends Error {
  override name = "FleetError";
  constructor(readonly kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The user asked for something that cannot be done as asked (exit code 2). */
export class UsageError extends FleetError {
  override name = "UsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

/** The message of a thrown error, or the thrown value as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The exit code for `error`: 2 for a usage error, 1 for anything else that was thrown. */
export function exitCodeOf(error: unknown): number {
  return error instanceof FleetError ? exitCodes[error.kind] : ExitCode.failure;
}

/**
 * Everything known about `error` for `--log-level debug`: its stack, then each cause's, so the
 * library error behind one of ours is not lost.
 */
export function errorDetail(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = error; e !== undefined && !seen.has(e);) {
    seen.add(e);
    const text = e instanceof Error ? e.stack ?? `${e.name}: ${e.message}` : String(e);
    parts.push(parts.length === 0 ? text : `Caused by: ${text}`);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join("\n");
}

/**
 * A value that does not match its wire schema; `what` says which value it was. A usage error:
 * the values the CLI parses are the user's (a Deployment file, a flag).
 */
export class WireFormatError extends FleetError {
  override name = "WireFormatError";
  constructor(readonly what: string, readonly detail: string, options?: ErrorOptions) {
    super("usage", `Invalid ${what}: ${detail}`, options);
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
    const reason = errorMessage(cause);
    throw new WireFormatError(what, `not valid JSON (${reason})`, { cause });
  }
  return parseWith(schema, json, what);
}
