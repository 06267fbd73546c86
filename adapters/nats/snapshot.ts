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

/** A value as {@link readBucketEntries} returns it. */
export interface BucketEntry {
  value: Uint8Array;
  /** When the broker stored it, epoch ms on the broker's clock. */
  created: number;
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
  const entries = await readBucketEntries(nc, bucket, logger, options);
  return new Map([...entries].map(([key, entry]) => [key, entry.value]));
}

/**
 * Current value of every key with the broker's timestamp of when it was stored (deleted
 * keys are absent): an age shown to a person is measured from that, not from a time the
 * writer put in the value.
 *
 * @throws {WatchError} when `signal` aborts before the read is complete.
 */
export async function readBucketEntries(
  nc: NatsConnection,
  bucket: string,
  logger: Logger,
  options: ReadBucketOptions = {},
): Promise<Map<string, BucketEntry>> {
  const entries = new Map<string, BucketEntry>();
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
      if (event.type === "ready") return entries;
      if (event.type === "put") {
        entries.set(event.key, { value: event.value, created: event.created });
      } else entries.delete(event.key);
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
