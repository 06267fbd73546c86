/**
 * A bucket watch for the operator's NATS adapters, with the start of a re-read as an event
 * in the stream (`restart`) instead of a callback, so the ports can pass it on in order.
 */
import type { Clock } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { watchBucket, type WatchEvent } from "../adapters/nats/mod.ts";
import type { NatsConnection } from "@nats-io/nats-core";

/** What the operator's adapters need to watch a bucket. */
export interface NatsWatchSettings {
  nc: NatsConnection;
  log: Logger;
  clock: Clock;
  /** Idle heartbeat of the watches: a wiped bucket is noticed after two missed ones. */
  watchHeartbeatMs: number;
}

/** {@link watchBucket} events, each re-read announced by a `restart` before its first event. */
export async function* watchWithRestarts(
  settings: NatsWatchSettings,
  bucket: string,
  signal: AbortSignal,
): AsyncGenerator<WatchEvent | { type: "restart" }> {
  let restarting = false;
  const events = watchBucket({
    nc: settings.nc,
    bucket,
    logger: settings.log,
    signal,
    clock: settings.clock,
    idleHeartbeatMs: settings.watchHeartbeatMs,
    // Called in order, just before the first event of the new read is handed out.
    onRestart: () => restarting = true,
  });
  for await (const event of events) {
    if (restarting) {
      restarting = false;
      yield { type: "restart" };
    }
    yield event;
  }
}
