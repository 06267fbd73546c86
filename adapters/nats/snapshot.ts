/** Reads a bucket's current values once, with one consumer instead of a get per key. */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "../logger.ts";
import { watchBucket } from "./kv_watch.ts";

/** Current value of every key (deleted keys are absent). */
export async function readBucket(
  nc: NatsConnection,
  bucket: string,
  logger: Logger,
  keyFilter?: string,
): Promise<Map<string, Uint8Array>> {
  const values = new Map<string, Uint8Array>();
  const stop = new AbortController();
  try {
    for await (
      const event of watchBucket({
        nc,
        bucket,
        logger,
        signal: stop.signal,
        ...(keyFilter ? { keyFilter } : {}),
      })
    ) {
      if (event.type === "ready") break;
      if (event.type === "put") values.set(event.key, event.value);
      else values.delete(event.key);
    }
  } finally {
    stop.abort();
  }
  return values;
}
