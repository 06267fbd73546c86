/**
 * `fleet operator run` as a child process of a benchmark: its RSS and CPU are then its own in
 * /proc. Ready = its "Read the fleet's current state" log line; warnings and errors it logs are
 * collected (and the first five echoed), since a benchmark counts them as failures.
 */
import { fileURLToPath } from "node:url";
import type { Logger } from "../adapters/logger.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

export interface OperatorProcess {
  pid: number;
  /** Resolves when the operator has read the fleet's current state. */
  ready: Promise<void>;
  /** Every WARN/ERROR line it logged, shared across restarts when the caller passes one array. */
  warnings: string[];
  stop(): Promise<void>;
}

/**
 * @param operatorArgs what follows `fleet operator run`
 * @param denoArgs extra `deno run` flags, e.g. `--cpu-prof`
 */
export function spawnOperator(options: {
  operatorArgs: string[];
  denoArgs?: string[];
  warnings?: string[];
  log: Logger;
}): OperatorProcess {
  const args = [
    "run",
    "-A",
    ...options.denoArgs ?? [],
    MAIN,
    "operator",
    "run",
    "--log-level",
    "info",
    ...options.operatorArgs,
  ];
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" })
    .spawn();
  const warnings = options.warnings ?? [];
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => resolveReady = r);
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.includes("Read the fleet's current state")) resolveReady();
        if (/\b(WARN|ERROR|warn|error)\b/.test(line)) {
          warnings.push(line);
          if (warnings.length <= 5) options.log.warn(`operator: ${line}`);
        }
      }
    }
  })();
  return {
    pid: child.pid,
    ready,
    warnings,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await child.status;
      await reading;
    },
  };
}
