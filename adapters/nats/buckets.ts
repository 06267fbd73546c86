/**
 * Creating and opening the JetStream KV buckets of DESIGN.md §2.
 */

import type { NatsConnection } from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";

export { type BucketName, Buckets } from "../../core/keys.ts";

/** JetStream's `JSStreamNameExistErr`: "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

/** Settings a bucket is created with; an existing bucket keeps its own. */
export interface BucketSettings {
  /** Copies on a NATS cluster: 1 on one machine, 3 on a cluster. */
  replicas: number;
  /** Revisions kept per key (a few for desired/state). */
  history: number;
}

/** A bucket could not be created or opened; the message names it. */
export class BucketError extends Error {
  override name = "BucketError";
  readonly bucket: string;
  constructor(message: string, bucket: string, options?: ErrorOptions) {
    super(message, options);
    this.bucket = bucket;
  }
}

/**
 * Creates the bucket if it does not exist, else opens it as it is: calling it again, from
 * any process, with the same or different settings, never fails because the bucket exists.
 *
 * @throws {BucketError} when JetStream is unavailable or the user may not create it.
 */
export async function ensureBucket(
  nc: NatsConnection,
  name: string,
  settings: BucketSettings,
): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(name, { replicas: settings.replicas, history: settings.history });
  } catch (err) {
    // Two processes racing to create it with different settings: the other one won.
    if (err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE) {
      return await openBucket(nc, name);
    }
    throw new BucketError(
      `Cannot create or open the "${name}" bucket on NATS: ${errorMessage(err)}`,
      name,
      { cause: err },
    );
  }
}

/**
 * Opens an existing bucket without any JetStream API call (`bindOnly`), for clients whose
 * permissions do not allow creating or inspecting streams. A missing bucket shows up only
 * when it is used.
 */
export async function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  try {
    return await new Kvm(nc).open(name, { bindOnly: true });
  } catch (err) {
    throw new BucketError(`Cannot open the "${name}" bucket on NATS: ${errorMessage(err)}`, name, {
      cause: err,
    });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
