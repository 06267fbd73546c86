/**
 * The one place that writes log lines. Plain `time level message key=value` text by
 * default (readable in `journalctl`, no colour when not on a terminal), or one JSON object
 * per line with `--log-format json`.
 */

export const LogLevels = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LogLevels[number];
export const LogFormats = ["text", "json"] as const;
export type LogFormat = typeof LogFormats[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line, e.g. `{ component: "agent" }`. */
  with(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default so stdout stays clean for command output. */
  write?: (line: string) => void;
  /** Prefix each line with a timestamp; journald adds its own, so `auto` omits it there. */
  timestamps?: boolean;
}

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

const encoder = new TextEncoder();
function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text !== undefined && /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text ?? "");
}

class LineLogger implements Logger {
  readonly #level: number;
  readonly #format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #timestamps: boolean;
  readonly #fields: LogFields;

  constructor(options: Required<LoggerOptions>, fields: LogFields) {
    this.#level = rank[options.level];
    this.#format = options.format;
    this.#write = options.write;
    this.#timestamps = options.timestamps;
    this.#fields = fields;
  }

  debug(message: string, fields?: LogFields): void {
    this.#log("debug", message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.#log("info", message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.#log("warn", message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.#log("error", message, fields);
  }

  with(fields: LogFields): Logger {
    return new LineLogger({
      level: LogLevels[this.#level] ?? "info",
      format: this.#format,
      write: this.#write,
      timestamps: this.#timestamps,
    }, { ...this.#fields, ...fields });
  }

  #log(level: LogLevel, message: string, fields?: LogFields): void {
    if (rank[level] < this.#level) return;
    const all = { ...this.#fields, ...fields };
    if (this.#format === "json") {
      const entries = Object.entries(all).map((
        [k, v],
      ) => [k, v instanceof Error ? v.message : v]);
      this.#write(JSON.stringify({
        time: new Date().toISOString(),
        level,
        msg: message,
        ...Object.fromEntries(entries),
      }));
      return;
    }
    const pairs = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`);
    const head = this.#timestamps ? `${new Date().toISOString()} ` : "";
    this.#write(
      `${head}${level.toUpperCase().padEnd(5)} ${message}${pairs.length ? " " : ""}${
        pairs.join(" ")
      }`,
    );
  }
}

/** Creates a logger; under systemd (JOURNAL_STREAM set) timestamps are left to journald. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const underJournald = Deno.env.get("JOURNAL_STREAM") !== undefined;
  return new LineLogger({
    level: options.level ?? "info",
    format: options.format ?? "text",
    write: options.write ?? writeStderr,
    timestamps: options.timestamps ?? !underJournald,
  }, {});
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = createLogger({ write: () => {} });
