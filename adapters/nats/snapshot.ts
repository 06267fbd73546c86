/** Reads a bucket's current values once, with one consumer instead of a get per key. */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "../logger.ts";
import { watchBucket, WatchError } from "./kv_watch.ts";

export interface ReadBucketOptions {
  /** Keys to read, NATS wildcards allowed. @default ">" */
  keyFilter?: string;
  /** Gives up the read (it retries while NATS cannot serve the bucket). */
  signal?: AbortSignal;
}

/**
 * Current value of every key (deleted keys are absent).
 *
 * @throws {WatchError} when `signal` aborts before the read is complete: a partial read is
 *   never returned as if it were the bucket.
 */
export async function readBucket(
  nc: NatsConnection,
  bucket: string,
  logger: Logger,
  options: ReadBucketOptions = {},
): Promise<Map<string, Uint8Array>> {
  const values = new Map<string, Uint8Array>();
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;
  try {
    for await (
      const event of watchBucket({
        nc,
        bucket,
        logger,
        signal,
        ...(options.keyFilter ? { keyFilter: options.keyFilter } : {}),
      })
    ) {
      if (event.type === "ready") return values;
      if (event.type === "put") values.set(event.key, event.value);
      else values.delete(event.key);
    }
  } finally {
    stop.abort();
  }
  throw new WatchError(
    `Gave up reading the "${bucket}" bucket before NATS had served all of it`,
    bucket,
    options.signal?.reason instanceof Error ? { cause: options.signal.reason } : undefined,
  );
}
