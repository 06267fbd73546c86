/** Helpers shared by the NATS adapter tests. */

import type { NatsConnection, Status } from "@nats-io/nats-core";
import { createLogger, type Logger, silentLogger } from "../adapters/logger.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import type { WatchEvent } from "../adapters/nats/kv_watch.ts";

const decoder = new TextDecoder();

/** A compact text form of an event, so tests compare plain strings. */
export function show(event: WatchEvent): string {
  switch (event.type) {
    case "put":
      return `put ${event.key}=${decoder.decode(event.value)}`;
    case "delete":
      return `${event.operation} ${event.key}`;
    case "ready":
      return `ready ${event.read}${event.restarted ? " restarted" : ""}`;
  }
}

/** Drains an iterable in the background, keeping what it yields and how it ended. */
export class Collector<T> {
  readonly items: T[] = [];
  readonly done: Promise<void>;
  error: unknown;

  constructor(iterable: AsyncIterable<T>) {
    this.done = (async () => {
      try {
        for await (const item of iterable) this.items.push(item);
      } catch (err) {
        this.error = err;
      }
    })();
  }
}

/** A logger whose lines are kept in `lines`, for assertions on log output. */
export function captureLogger(
  level: "debug" | "info" = "debug",
): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    logger: createLogger({ level, timestamps: false, write: (line) => lines.push(line) }),
    lines,
  };
}

/** Resolves on the connection's next status event of `type` (call it before the cause). */
export function nextStatus(nc: NatsConnection, type: Status["type"]): Promise<void> {
  const statuses = nc.status();
  return (async () => {
    for await (const s of statuses) if (s.type === type) return;
  })();
}

/** A test's connection to the nats-server at `url`, closed by `await using`. */
export async function testConnection(url: string): Promise<NatsConnection & AsyncDisposable> {
  const nc = await connectNats({
    servers: [url],
    credentials: noCredentials(),
    name: "test",
    logger: silentLogger,
  });
  return Object.assign(nc, { [Symbol.asyncDispose]: () => nc.close() });
}
