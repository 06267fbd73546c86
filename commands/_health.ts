/** The --health-port flag of the control-plane commands and the server it starts. */

import { Option } from "@commander-js/extra-typings";
import { serveHealth } from "../adapters/health_server.ts";
import type { Logger } from "../adapters/logger.ts";
import type { MetricsRegistry } from "../adapters/metrics.ts";
import { integerParser } from "./_cli.ts";

/** `--health-port <port>` with its own env var; unset, no health server runs. */
export function healthPortOption(env: string) {
  return new Option(
    "--health-port <port>",
    "serve /healthz, /readyz and /metrics (Prometheus) on this port (default: not served)",
  ).argParser(integerParser("--health-port", 1, 65535)).env(env);
}

/**
 * Starts the health server when a port was given; it stops when `signal` aborts or when
 * disposed (the command ended for another reason).
 */
export function serveHealthIfAsked(
  port: number | undefined,
  options: {
    notReady: () => string | undefined;
    metrics: MetricsRegistry;
    log: Logger;
    signal: AbortSignal;
  },
): AsyncDisposable {
  if (port === undefined) return { [Symbol.asyncDispose]: () => Promise.resolve() };
  const stop = new AbortController();
  const server = serveHealth({
    port,
    ...options,
    signal: AbortSignal.any([options.signal, stop.signal]),
  });
  return {
    [Symbol.asyncDispose]: () => {
      stop.abort();
      return server.finished;
    },
  };
}
