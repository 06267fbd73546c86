/**
 * `fleet operator run` as a child process of a benchmark ({@link spawnLogged}). Ready = its
 * "Read the fleet's current state" log line; warnings and errors it logs are collected (and the
 * first five echoed), since a benchmark counts them as failures.
 */
import { fileURLToPath } from "node:url";
import type { Logger } from "../adapters/logger.ts";
import { spawnLogged } from "./_child_process.ts";

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
    // The bench's deployments live in namespace default, which no admin binds.
    "--allow-unbound-namespaces",
    ...options.operatorArgs,
  ];
  const warnings = options.warnings ?? [];
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => resolveReady = r);
  const { child, stop } = spawnLogged(args, (line) => {
    if (line.includes("Read the fleet's current state")) resolveReady();
    if (/\b(WARN|ERROR|warn|error)\b/.test(line)) {
      warnings.push(line);
      if (warnings.length <= 5) options.log.warn(`operator: ${line}`);
    }
  });
  return { pid: child.pid, ready, warnings, stop };
}

/** The operator's failed writes among the lines it logged: it warns "Could not …" for each. */
export function failedWrites(warnings: string[]): number {
  return warnings.filter((w) => /Could not/.test(w)).length;
}
