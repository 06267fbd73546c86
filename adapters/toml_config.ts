/**
 * The one way Fleet reads a TOML config file (the agent's, the callout's): read the file, parse
 * the TOML (a syntax error names its line), refuse every key the schema does not know (naming
 * its table and the closest known key), validate with zod and return the typed value.
 *
 * Unknown keys are errors rather than ignored because a misspelt key is silently a default:
 * `heartbeat_second = 5` would leave the heartbeat at 30 s and nobody would know why.
 *
 * @module
 */
import * as z from "zod";
import { parse as parseToml, TomlError } from "smol-toml";
import { describeIssues, errorMessage, FleetError } from "../core/errors.ts";

/**
 * A config file that cannot be used: missing, unreadable, not TOML, an unknown key or a value
 * that breaks its rule. A usage error (exit code 2): the file is the user's input.
 */
export class ConfigFileError extends FleetError {
  override name = "ConfigFileError";
  /**
   * @param what which config it is, for the message: "agent config" gives
   *   `Invalid agent config /etc/fleet-agent/config.toml: <detail>`.
   */
  constructor(
    readonly what: string,
    readonly path: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super("usage", `Invalid ${what} ${path}: ${detail}`, options);
  }
}

/** One kind of config file: what its messages call it (see {@link ConfigFileError}), its schema. */
export class TomlConfigFile<S extends z.ZodType> {
  /** @param schema what the file must hold; unknown keys are refused in every table. */
  constructor(readonly what: string, readonly schema: S) {}

  /** The usage error for this kind of file at `path`, for callers that check more than it. */
  error(path: string, detail: string, options?: ErrorOptions): ConfigFileError {
    return new ConfigFileError(this.what, path, detail, options);
  }

  /**
   * Reads and validates the config file at `path`.
   *
   * @throws {ConfigFileError} naming the file and what is wrong with it.
   */
  async load(path: string): Promise<z.output<S>> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (cause) {
      throw this.error(path, `the file ${readFailure(cause)}`, { cause });
    }
    return this.parse(text, path);
  }

  /**
   * Validates config text; `path` is only used in messages.
   *
   * @throws {ConfigFileError} for invalid TOML, unknown keys or invalid values.
   */
  parse(text: string, path: string): z.output<S> {
    let raw: unknown;
    try {
      raw = parseToml(text);
    } catch (cause) {
      throw this.error(path, `not valid TOML${tomlErrorDetail(cause)}`, { cause });
    }
    const unknown = unknownKeys(this.schema, raw);
    const result = this.schema.safeParse(raw);
    if (unknown.length === 0 && result.success) return result.data;
    // A misspelt required key is also reported missing: the suggestion already says it.
    const explained = new Set(
      unknown.flatMap((u) =>
        u.suggestion?.table === u.table ? [keyPath([...u.table, u.suggestion.key])] : []
      ),
    );
    const issues = result.success
      ? []
      : result.error.issues.filter((issue) => !explained.has(keyPath(issue.path)));
    const problems = [
      ...unknown.map(describeUnknownKey),
      ...(issues.length > 0 ? [describeIssues(new z.ZodError(issues))] : []),
    ];
    throw this.error(path, problems.join("; "));
  }
}

/** Why a file could not be read, to follow "the file" or a field naming one: "does not exist". */
export function readFailure(cause: unknown): string {
  if (cause instanceof Deno.errors.NotFound) return "does not exist";
  if (cause instanceof Deno.errors.PermissionDenied) return "cannot be read (permission denied)";
  if (cause instanceof Deno.errors.IsADirectory) return "is a directory";
  return `cannot be read (${errorMessage(cause)})`;
}

/** ` at line 3, column 7 (invalid value)` for smol-toml's errors. */
function tomlErrorDetail(cause: unknown): string {
  if (!(cause instanceof Error)) return ` (${String(cause)})`;
  // smol-toml's message continues with the offending lines, which would break the one line.
  const reason = (cause.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
  const where = cause instanceof TomlError ? ` at line ${cause.line}, column ${cause.column}` : "";
  return `${where} (${reason})`;
}

/** A key in the file that the schema does not know. */
export interface UnknownKey {
  /** The table it is in: [] for the top level, ["nats", "credentials"] for `[nats.credentials]`. */
  table: PropertyKey[];
  key: string;
  /** The keys that table does know. */
  known: string[];
  /** The known key it most likely meant, in this table or another. */
  suggestion?: { table: PropertyKey[]; key: string };
}

/** Every key in `value` that `schema` does not know, with the closest key it does. */
export function unknownKeys(schema: z.core.$ZodType, value: unknown): UnknownKey[] {
  const found: Omit<UnknownKey, "suggestion">[] = [];
  collectUnknownKeys(schema, value, [], found);
  if (found.length === 0) return [];
  const everywhere: { table: PropertyKey[]; key: string }[] = [];
  collectKnownKeys(schema, [], everywhere, new Set());
  return found.map((u) => {
    const here = closest(u.key, u.known);
    if (here !== undefined) return { ...u, suggestion: { table: u.table, key: here } };
    const elsewhere = closest(u.key, everywhere.map((k) => k.key));
    const match = everywhere.find((k) => k.key === elsewhere);
    return match ? { ...u, suggestion: match } : u;
  });
}

function describeUnknownKey(u: UnknownKey): string {
  const where = u.table.length === 0 ? "at the top level" : `in ${tableName(u.table)}`;
  let hint: string;
  if (u.suggestion === undefined) {
    hint = u.known.length > 0 ? `known keys: ${u.known.join(", ")}` : "this table takes no keys";
  } else if (keyPath(u.suggestion.table) === keyPath(u.table)) {
    hint = `did you mean ${u.suggestion.key}?`;
  } else {
    const there = u.suggestion.table.length === 0
      ? "at the top level"
      : `in ${tableName(u.suggestion.table)}`;
    hint = `did you mean ${u.suggestion.key} ${there}?`;
  }
  return `unknown key ${tomlKey(u.key)} ${where} (${hint})`;
}

/** `[nats.credentials]`, as the table would be written in TOML. */
function tableName(table: PropertyKey[]): string {
  return `[${table.map((k) => tomlKey(String(k))).join(".")}]`;
}

/** TOML spelling of a key: bare when it can be, quoted otherwise. */
export function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

function keyPath(path: readonly PropertyKey[]): string {
  return JSON.stringify(path.map(String));
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

/** The schema a wrapper (optional, default, pipe, ...) validates with. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (let depth = 0; depth < 16; depth++) {
    if (
      s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault ||
      s instanceof z.ZodPrefault || s instanceof z.ZodReadonly || s instanceof z.ZodCatch ||
      s instanceof z.ZodNonOptional
    ) {
      s = s.unwrap();
    } else if (s instanceof z.ZodPipe) {
      s = s.in;
    } else {
      return s;
    }
  }
  return s;
}

/** The branch of a union `value` belongs to: by discriminator, else the first that accepts it. */
function branchFor(schema: z.ZodUnion, value: unknown): z.core.$ZodType | undefined {
  const options: readonly z.core.$ZodType[] = schema.options;
  if (schema instanceof z.ZodDiscriminatedUnion && isTable(value)) {
    const discriminator = schema.def.discriminator;
    return options.find((option) => {
      const s = unwrap(option);
      const tag = s instanceof z.ZodObject ? s.shape[discriminator] : undefined;
      return tag !== undefined && z.safeParse(tag, value[discriminator]).success;
    });
  }
  return options.find((option) => z.safeParse(option, value).success);
}

function collectUnknownKeys(
  schema: z.core.$ZodType,
  value: unknown,
  table: PropertyKey[],
  found: Omit<UnknownKey, "suggestion">[],
): void {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) {
    if (!isTable(value)) return; // zod reports the wrong type
    const shape: Record<string, z.core.$ZodType> = s.shape;
    const known = Object.keys(shape);
    for (const [key, child] of Object.entries(value)) {
      const field = shape[key];
      if (field === undefined) found.push({ table, key, known });
      else collectUnknownKeys(field, child, [...table, key], found);
    }
  } else if (s instanceof z.ZodUnion) {
    const branch = branchFor(s, value);
    if (branch !== undefined) collectUnknownKeys(branch, value, table, found);
  } else if (s instanceof z.ZodRecord) {
    if (!isTable(value)) return;
    for (const [key, child] of Object.entries(value)) {
      collectUnknownKeys(s.valueType, child, [...table, key], found);
    }
  } else if (s instanceof z.ZodArray) {
    if (!Array.isArray(value)) return;
    value.forEach((child, i) => collectUnknownKeys(s.element, child, [...table, i], found));
  }
}

/** Every key the schema knows, with its table; records and arrays are looked into, not named. */
function collectKnownKeys(
  schema: z.core.$ZodType,
  table: PropertyKey[],
  out: { table: PropertyKey[]; key: string }[],
  seen: Set<z.core.$ZodType>,
): void {
  const s = unwrap(schema);
  if (seen.has(s)) return;
  seen.add(s);
  if (s instanceof z.ZodObject) {
    const shape: Record<string, z.core.$ZodType> = s.shape;
    for (const [key, field] of Object.entries(shape)) {
      if (!out.some((k) => k.key === key && keyPath(k.table) === keyPath(table))) {
        out.push({ table, key });
      }
      collectKnownKeys(field, [...table, key], out, seen);
    }
  } else if (s instanceof z.ZodUnion) {
    const options: readonly z.core.$ZodType[] = s.options;
    for (const option of options) collectKnownKeys(option, table, out, seen);
  } else if (s instanceof z.ZodRecord) {
    collectKnownKeys(s.valueType, [...table, "*"], out, seen);
  } else if (s instanceof z.ZodArray) {
    collectKnownKeys(s.element, [...table, 0], out, seen);
  }
}

/**
 * The candidate `key` most likely meant: the same but for case or `-`/`_`, else the nearest by
 * edit distance when it is close enough (a third of the key's length, at least one edit), else
 * one that `key` is the start of (`max_ttl` for `max_ttl_seconds`).
 */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  const normal = (s: string) => s.toLowerCase().replaceAll("-", "_");
  const wanted = normal(key);
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(wanted.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(wanted, normal(candidate));
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined || wanted.length < 3) return best;
  const extended = candidates.filter((c) => normal(c).startsWith(wanted));
  return extended.length === 1 ? extended[0] : undefined;
}

/** Levenshtein distance, where swapping two neighbouring letters counts as one edit. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
