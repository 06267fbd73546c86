/**
 * The control plane's health endpoints on one port: `/healthz` (the process answers),
 * `/readyz` (ready to serve, else 503 with the reason) and `/metrics` (Prometheus text).
 */

import type { Logger } from "./logger.ts";
import { METRICS_CONTENT_TYPE, type MetricsRegistry } from "./metrics.ts";

/** Options of {@link serveHealth}. */
export interface HealthServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** @default "0.0.0.0" (probes come from the kubelet, scrapes from Prometheus) */
  hostname?: string;
  /** Why the process is not ready yet, or undefined when it is. */
  notReady: () => string | undefined;
  metrics: MetricsRegistry;
  log: Logger;
  /** Stops the server. */
  signal: AbortSignal;
}

/** A running health server. */
export interface HealthServer {
  /** The port it listens on (the chosen one when asked for 0). */
  readonly port: number;
  /** Resolves once the server has stopped after `signal` aborted. */
  readonly finished: Promise<void>;
}

const text = (body: string, status = 200, contentType = "text/plain; charset=utf-8") =>
  new Response(body, { status, headers: { "content-type": contentType } });

/** Listens until `signal` aborts. */
export function serveHealth(options: HealthServerOptions): HealthServer {
  const server = Deno.serve({
    port: options.port,
    hostname: options.hostname ?? "0.0.0.0",
    signal: options.signal,
    onListen: () => {},
  }, (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text("only GET\n", 405);
    }
    switch (new URL(request.url).pathname) {
      case "/healthz":
        return text("ok\n");
      case "/readyz": {
        const reason = options.notReady();
        return reason === undefined ? text("ready\n") : text(`not ready: ${reason}\n`, 503);
      }
      case "/metrics":
        return text(options.metrics.text(), 200, METRICS_CONTENT_TYPE);
      default:
        return text("not found: try /healthz, /readyz or /metrics\n", 404);
    }
  });
  const port = server.addr.port;
  options.log.info(`Serving /healthz, /readyz and /metrics on port ${port}`);
  return { port, finished: server.finished };
}
