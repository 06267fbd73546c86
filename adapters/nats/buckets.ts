/**
 * Creating and opening the JetStream KV buckets of DESIGN.md §2.
 */

import { InvalidArgumentError, type NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { Clock } from "../../core/clock.ts";
import { errorMessage } from "../../core/errors.ts";
import { bucketLimits } from "../../core/limits.ts";
import type { Logger } from "../logger.ts";
import { sleep } from "../timers.ts";
import { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";

export { type BucketName, Buckets } from "../../core/keys.ts";

/**
 * Whether `error` is JetStream refusing a compare-and-set write (`kv.create`, `kv.update`):
 * the key's last revision is not the one the write expected, because someone else wrote it.
 * By error code, not message text: the code is the server's contract, the text is not.
 */
export function isWrongLastSequence(error: unknown): boolean {
  return hasJetStreamCode(
    error,
    JetStreamCodes.WrongLastSequence,
    JetStreamCodes.WrongLastSequenceUnknown,
  );
}

/**
 * Whether `error` is a write refused for being larger than the server's `max_payload` (headers
 * included). nats.js refuses it before sending, with an InvalidArgumentError whose only mark is
 * its text; it is no race and must not be retried or reported as one.
 */
export function isMaxPayloadExceeded(error: unknown): boolean {
  return error instanceof InvalidArgumentError && /\bmax_payload\b/.test(error.message);
}

/**
 * Whether `error` is JetStream refusing a value larger than the bucket's `max_msg_size`
 * ({@link bucketLimits}): no race, and no use retrying.
 */
export function isValueTooLarge(error: unknown): boolean {
  return hasJetStreamCode(error, JetStreamCodes.MessageExceedsMaximum);
}

/**
 * Settings a bucket is created with; an existing bucket keeps its own. Its size limits are
 * always those of core/limits.ts {@link bucketLimits}.
 */
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
    const limits = bucketLimits(name);
    return await kvm.create(name, {
      replicas: settings.replicas,
      history: settings.history,
      max_bytes: limits.maxBytes,
      maxValueSize: limits.maxValueSize,
    });
  } catch (err) {
    // Two processes racing to create it with different settings: the other one won.
    if (hasJetStreamCode(err, JetStreamCodes.StreamNameInUse)) {
      return await openBucket(nc, name);
    }
    throw new BucketError(
      `Cannot create or open the "${name}" bucket on NATS: ${errorMessage(err)}` +
        placementHint(err, settings.replicas),
      name,
      { cause: err },
    );
  }
}

/**
 * What to check when JetStream has too few servers for the copies of a bucket. Besides a server
 * down, a nats-server 2.10 started together with the others can stay out of JetStream's
 * cluster while passing its health checks (DESIGN.md §8); restarting it brings it in.
 */
function placementHint(err: unknown, replicas: number): string {
  if (!hasJetStreamCode(err, JetStreamCodes.ClusterNoPeers)) return "";
  const need = replicas === 1
    ? "Its one copy needs a NATS server in JetStream's cluster: check that one runs"
    : `Its ${replicas} copies need ${replicas} NATS servers in JetStream's cluster: check that ` +
      `they run`;
  return `. ${need}. A server started together with the others can be left out of that cluster ` +
    `while it looks healthy: \`nats server report jetstream\` lists the members; restart the ` +
    `one that is missing`;
}

/**
 * Makes the bucket's stream refuse rollup headers (`Nats-Rollup`, which `kv.purge` sends too),
 * changing an existing stream in place: its entries stay. @nats-io/kv creates every bucket
 * with rollups allowed and has no option against it, hence a stream update afterwards. Left
 * without `deny_purge`, which nats-server never lets be undone: devices may not call the
 * stream purge API anyway, and a purge of old delete markers stays possible.
 *
 * @returns whether the stream had to be changed
 * @throws {BucketError} when the bucket is missing or the user may not change it.
 */
export async function refuseRollups(nc: NatsConnection, name: string): Promise<boolean> {
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const stream = `KV_${name}`;
    const { config } = await jsm.streams.info(stream);
    if (!config.allow_rollup_hdrs) return false;
    await jsm.streams.update(stream, { ...config, allow_rollup_hdrs: false });
    return true;
  } catch (err) {
    throw new BucketError(
      `Cannot make the "${name}" bucket on NATS refuse rollups: ${errorMessage(err)}`,
      name,
      { cause: err },
    );
  }
}

/**
 * Gives the bucket's stream the size limits of {@link bucketLimits}, changing an existing
 * stream in place (a bucket made by an older Fleet has none): its entries stay. A `max_bytes`
 * below what the bucket already holds is left for later, since nats-server would drop the
 * oldest entries to fit; the value size limit only applies to new writes.
 *
 * @returns what it changed, and whether the bucket holds more than its `max_bytes` allows
 * @throws {BucketError} when the bucket is missing or the user may not change it.
 */
export async function applyBucketLimits(
  nc: NatsConnection,
  name: string,
): Promise<{ changed: boolean; overfull: boolean }> {
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const stream = `KV_${name}`;
    const { config, state } = await jsm.streams.info(stream);
    const limits = bucketLimits(name);
    const overfull = state.bytes > limits.maxBytes;
    const maxBytes = overfull ? config.max_bytes : limits.maxBytes;
    if (config.max_bytes === maxBytes && config.max_msg_size === limits.maxValueSize) {
      return { changed: false, overfull };
    }
    await jsm.streams.update(stream, {
      ...config,
      max_bytes: maxBytes,
      max_msg_size: limits.maxValueSize,
    });
    return { changed: true, overfull };
  } catch (err) {
    throw new BucketError(
      `Cannot set the size limits of the "${name}" bucket on NATS: ${errorMessage(err)}`,
      name,
      { cause: err },
    );
  }
}

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 10_000;

/**
 * {@link ensureBucket}, retried while NATS cannot do it (down, or a cluster still forming, which
 * answers "insufficient resources" for a while): a process that starts before its broker waits
 * instead of failing. Logs the reason the first time, when it changes, and at attempts 2^n.
 *
 * @param options.clock times the pauses between attempts @default systemClock
 * @returns undefined when `signal` aborts first.
 * @throws {BucketError} only once the connection is closed for good.
 */
export async function ensureBucketRetrying(
  nc: NatsConnection,
  name: string,
  settings: BucketSettings,
  options: { signal: AbortSignal; logger: Logger; clock?: Clock },
): Promise<KV | undefined> {
  let lastProblem = "";
  for (let attempt = 1; !options.signal.aborted; attempt++) {
    try {
      const kv = await ensureBucket(nc, name, settings);
      if (lastProblem !== "") options.logger.info(`The "${name}" bucket is ready now`);
      return kv;
    } catch (err) {
      if (!(err instanceof BucketError) || nc.isClosed()) throw err;
      if (err.message !== lastProblem || (attempt & (attempt - 1)) === 0) {
        options.logger.warn(`${err.message}; retrying`, { attempt });
      }
      lastProblem = err.message;
      await sleep(
        Math.min(RETRY_MIN_MS * 2 ** (attempt - 1), RETRY_MAX_MS),
        options.signal,
        options.clock,
      );
    }
  }
  return undefined;
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

/**
 * {@link openBucket} once, on first use: the returned function gives the same bucket every
 * time, and opens it again on the call after a failed open.
 */
export function lazyBucket(nc: NatsConnection, name: string): () => Promise<KV> {
  let kv: Promise<KV> | undefined;
  return () => {
    const opening = kv ??= openBucket(nc, name);
    opening.catch(() => kv = undefined);
    return opening;
  };
}
