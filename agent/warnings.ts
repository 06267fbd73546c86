/**
 * The agent's recent warnings and errors, kept in memory for `fleet device diag`: a field
 * engineer sees what the agent complained about without a shell on the device.
 */
import type { LogFields, Logger } from "../adapters/logger.ts";
import type { Clock } from "../core/clock.ts";
import type { DiagWarning } from "../core/device_commands.ts";

/** The last `size` warnings and errors, oldest first. */
export class WarningRing {
  readonly #size: number;
  readonly #items: DiagWarning[] = [];

  constructor(size = 50) {
    this.#size = size;
  }

  add(warning: DiagWarning): void {
    this.#items.push(warning);
    if (this.#items.length > this.#size) this.#items.shift();
  }

  items(): DiagWarning[] {
    return [...this.#items];
  }
}

/** `log`, also keeping its warnings and errors (with their fields) in `ring`. */
export function recordingWarnings(log: Logger, ring: WarningRing, clock: Clock): Logger {
  const keep = (level: string, message: string, fields?: LogFields) => {
    const detail = Object.entries(fields ?? {}).map(([k, v]) =>
      `${k}=${v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v)}`
    );
    ring.add({ at: clock.now(), level, message: [message, ...detail].join(" ") });
  };
  return {
    debug: (message, fields) => log.debug(message, fields),
    info: (message, fields) => log.info(message, fields),
    warn: (message, fields) => {
      keep("warn", message, fields);
      log.warn(message, fields);
    },
    error: (message, fields) => {
      keep("error", message, fields);
      log.error(message, fields);
    },
    with: (fields) => recordingWarnings(log.with(fields), ring, clock),
  };
}
