/**
 * How a command that failed is reported (main.ts's top-level catch): one readable line, the
 * detail (stack and causes) at `--log-level debug`, and the exit code the error's kind decides.
 * Light on purpose: main.ts loads it before any command module.
 * @module
 */
import {
  createLogger,
  type LogFormat,
  LogFormats,
  type LogLevel,
  LogLevels,
} from "../adapters/logger.ts";
import { errorDetail, errorMessage, exitCodeOf } from "../core/errors.ts";

export { ExitCode } from "../core/errors.ts";

/**
 * The log flags of the command that runs. The catch in main.ts sits outside every command, so
 * the command's `--log-level` reaches it here (set by `loggerFrom()`), not through arguments.
 */
let recorded: { level: LogLevel; format: LogFormat } | undefined;

/** Remembers the running command's log flags, so its failure is reported the same way. */
export function recordLogFlags(flags: { logLevel: LogLevel; logFormat: LogFormat }): void {
  recorded = { level: flags.logLevel, format: flags.logFormat };
}

/** A FLEET_LOG_* variable when set to a valid choice, for failures before any logger. */
function fromEnv<T extends string>(name: string, choices: readonly T[]): T | undefined {
  const value = Deno.env.get(name);
  return choices.find((choice) => choice === value);
}

/**
 * Prints `error` as one line (its message: what failed, the value, what to do), with its
 * detail at debug level, and returns the exit code for it: 2 for a usage error, else 1.
 */
export function reportError(error: unknown): number {
  const log = createLogger({
    // One readable line for people: no timestamp, journald or a terminal adds context.
    timestamps: false,
    level: recorded?.level ?? fromEnv("FLEET_LOG_LEVEL", LogLevels) ?? "info",
    format: recorded?.format ?? fromEnv("FLEET_LOG_FORMAT", LogFormats) ?? "text",
  });
  log.error(errorMessage(error));
  log.debug(errorDetail(error));
  return exitCodeOf(error);
}
