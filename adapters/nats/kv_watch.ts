/**
 * A resilient watch of a JetStream KV bucket that says when a complete read is done.
 *
 * Why not `kv.watch()`: it gives no signal when the initial read is empty, and the ordered
 * push consumer under it (nats.js 3.4) notices a deleted stream only after ~90 s of missed
 * 30 s heartbeats, then resumes at its old stream sequence, silently skipping the first
 * entries of a re-created bucket. Here a plain push consumer (same wire permissions:
 * `$JS.API.CONSUMER.CREATE.KV_<bucket>.*.<filter>` and the caller's inbox) is created per
 * read; anything that breaks the sequence (a gap, missing heartbeats, a lost consumer)
 * starts a fresh read of the current values, announced by `onRestart` and ended by a
 * `ready` event with `restarted: true`.
 *
 * Each entry carries the broker's timestamp (`created`, like `KvEntry.created`): the control
 * plane judges a device's liveness on it, never on a timestamp the device wrote.
 */

import { createInbox, nanos, type NatsConnection, nuid, RequestError } from "@nats-io/nats-core";
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Clock } from "../../core/clock.ts";
import { systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { sleep } from "../timers.ts";
import { drainFeed, Ending, OpenRetries, QueueFeed, retryDelayMs } from "./_feed.ts";
import { errorMessage } from "../../core/errors.ts";
import { kvEntryEvent } from "./_kv_entry.ts";
import { readGateOf } from "./_read_gate.ts";
import { brokerDenial } from "./denied.ts";
import { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";

/**
 * One change seen by {@link watchBucket}, in stream order. `created` is when the broker
 * stored the entry, in epoch ms on the broker's clock (`KvEntry.created`).
 */
export type WatchEvent =
  | { type: "put"; key: string; value: Uint8Array; revision: number; created: number }
  | {
    type: "delete";
    key: string;
    revision: number;
    created: number;
    operation: "DEL" | "PURGE";
  }
  | {
    /**
     * Every value present when this read started has been delivered. `read` counts the
     * reads: 1 for the first, 2 after the first restart, ...
     */
    type: "ready";
    read: number;
    restarted: boolean;
  };

/** Why a watch started a new read. */
export type WatchRestartReason =
  /** The server stopped sending heartbeats: the bucket was deleted or lost, or the
   * consumer expired while this process was away. */
  | "heartbeats-missed"
  /** A delivery sequence gap: an update was lost in transit. */
  | "gap"
  /** The server side of the watch ended unexpectedly. */
  | "closed";

/** Passed to `onRestart` before the entries of a new read. */
export interface WatchRestart {
  /** The number of the read that starts (2 for the first restart). */
  read: number;
  reason: WatchRestartReason;
}

/** Options of {@link watchBucket}. */
export interface WatchBucketOptions {
  nc: NatsConnection;
  /** Bucket name, e.g. `"desired-state"`. */
  bucket: string;
  /** Keys to watch, NATS wildcards allowed, e.g. `"dev1.>"`. @default ">" */
  keyFilter?: string;
  logger: Logger;
  /** Ends the watch: the iteration finishes after the events already delivered. */
  signal: AbortSignal;
  /**
   * Called, in order with the events, just before the first event of a restarted read.
   * After the `ready` that ends that read, a key the caller knew that was not delivered
   * again since this call no longer exists (a deleted bucket leaves no delete markers).
   */
  onRestart?: (restart: WatchRestart) => void;
  /**
   * Idle heartbeat the server sends when nothing changes; two missed ones (2-3 intervals)
   * mean the watch is lost and a new read starts. Shorter = faster recovery, more idle
   * traffic. @default 15000
   */
  idleHeartbeatMs?: number;
  /**
   * Times the pauses between attempts to (re)start a read. The idle heartbeats themselves
   * are sent by the server and checked by the NATS client on its own timers.
   * @default systemClock
   */
  clock?: Clock;
}

/** The watch cannot go on (bad arguments, or the connection was closed for good). */
export class WatchError extends Error {
  override name = "WatchError";
  readonly bucket: string;
  constructor(message: string, bucket: string, options?: ErrorOptions) {
    super(message, options);
    this.bucket = bucket;
  }
}

const DEFAULT_IDLE_HEARTBEAT_MS = 15_000;
/** Ephemeral consumers left behind (we may not have permission to delete them) expire. */
const INACTIVE_THRESHOLD_MS = 5 * 60_000;
/** Reads that end sooner than this in a row are spaced out with the retry backoff. */
const QUICK_END_MS = 10_000;

/**
 * Watches the current values of a bucket and then its live changes, restarting by itself
 * after anything that could have lost an update. Yields `put`/`delete` events in stream
 * order and a `ready` event after each complete read (also for an empty bucket).
 *
 * The iteration starts when the caller starts iterating and ends when `signal` aborts (or
 * the caller stops iterating); neither an unreachable server nor a missing bucket ends it,
 * they are logged and retried. Waits for the connection if it is down.
 *
 * @throws {WatchError} at once for an invalid bucket name, key filter or heartbeat, and from the
 *   iteration when the connection is closed for good.
 */
export function watchBucket(options: WatchBucketOptions): AsyncIterable<WatchEvent> {
  const keyFilter = options.keyFilter ?? ">";
  validateBucket(options.bucket);
  validateFilter(options.bucket, keyFilter);
  const heartbeat = options.idleHeartbeatMs ?? DEFAULT_IDLE_HEARTBEAT_MS;
  if (!(heartbeat >= 100)) {
    throw new WatchError(
      `Cannot watch the "${options.bucket}" bucket: idleHeartbeatMs must be at least 100, ` +
        `got ${heartbeat}`,
      options.bucket,
    );
  }
  return {
    [Symbol.asyncIterator]: () => drainFeed(new BucketWatch({ ...options, keyFilter })),
  };
}

/** How one read ended. */
type ReadEnd =
  | { kind: "restart"; reason: WatchRestartReason; detail?: string }
  | { kind: "stopped" };

/** A consumer that exists on the server, with its messages not yet handed out. */
interface ConsumerSession {
  iterator: ConsumerMessages;
  /** Values present when the consumer was created: the size of the initial read. */
  numPending: number;
  /** Delivers the messages received so far, then every later one, to `fn`. */
  attach(fn: (m: JsMsg) => void): void;
  /** Lets the connection's next initial read start (see `_read_gate.ts`). */
  releaseGate(): void;
}

class BucketWatch extends QueueFeed<WatchEvent, WatchRestart> {
  readonly #nc: NatsConnection;
  readonly #bucket: string;
  readonly #stream: string;
  readonly #prefix: string;
  readonly #filterSubject: string;
  readonly #log: Logger;
  readonly #heartbeatMs: number;
  readonly #clock: Clock;
  #read = 0;

  constructor(options: WatchBucketOptions & { keyFilter: string }) {
    super(options.signal, options.onRestart);
    this.#nc = options.nc;
    this.#bucket = options.bucket;
    this.#stream = `KV_${options.bucket}`;
    this.#prefix = `$KV.${options.bucket}.`;
    this.#filterSubject = `${this.#prefix}${options.keyFilter}`;
    this.#log = options.logger.with({ component: "kv-watch", bucket: options.bucket });
    this.#heartbeatMs = options.idleHeartbeatMs ?? DEFAULT_IDLE_HEARTBEAT_MS;
    this.#clock = options.clock ?? systemClock;
  }

  protected failure(err: unknown): Error {
    return err instanceof WatchError ? err : new WatchError(
      `Watching the "${this.#bucket}" bucket failed: ${errorMessage(err)}`,
      this.#bucket,
      { cause: err },
    );
  }

  protected async run(): Promise<void> {
    let restart: WatchRestartReason | undefined;
    let quickEnds = 0;
    while (!this.signal.aborted) {
      const startedAt = this.#clock.monotonic();
      const end = await this.#readOnce(restart);
      if (end.kind === "stopped") return;
      restart = end.reason;
      this.#log.warn(restartMessage(this.#bucket, end.reason), {
        ...(end.detail !== undefined ? { detail: end.detail } : {}),
      });
      // A read that keeps ending right away must not turn into a busy loop.
      quickEnds = this.#clock.monotonic() - startedAt < QUICK_END_MS ? quickEnds + 1 : 0;
      if (quickEnds > 1) await sleep(retryDelayMs(quickEnds - 1), this.signal, this.#clock);
    }
  }

  /**
   * One read: creates the consumer (retrying until it exists), streams its messages into
   * the queue, and resolves when it must be replaced or the watch stops.
   */
  async #readOnce(restartReason: WatchRestartReason | undefined): Promise<ReadEnd> {
    const session = await this.#openConsumer();
    if (!session) return { kind: "stopped" };
    const { iterator, numPending } = session;
    if (this.signal.aborted) {
      session.releaseGate();
      iterator.stop();
      await iterator.closed();
      return { kind: "stopped" };
    }
    const read = ++this.#read;
    const restarted = restartReason !== undefined;
    if (restartReason !== undefined) {
      this.queue.push({ kind: "restart", restart: { read, reason: restartReason } });
    }

    let delivered = 0;
    let ready = false;
    let lastDeliverySeq = 0;
    let lastStreamSeq = 0;
    const ending = new Ending<ReadEnd>();
    const finish = (value: ReadEnd): void => ending.decide(value);
    const markReady = (): void => {
      ready = true;
      session.releaseGate();
      this.queue.push({ kind: "event", event: { type: "ready", read, restarted } });
      this.#log.debug(`${restarted ? "Re-read" : "Read"} the bucket`, { read, entries: delivered });
    };

    if (numPending === 0) markReady();
    session.attach((m) => {
      if (!ending.open) return; // this read is over; the next one re-delivers everything
      const dseq = m.info.deliverySequence;
      if (dseq > lastDeliverySeq + 1) return finish({ kind: "restart", reason: "gap" });
      // A consumer restored by a restarted server may rewind and send some again.
      lastDeliverySeq = dseq;
      if (m.seq <= lastStreamSeq) return;
      lastStreamSeq = m.seq;
      delivered++;
      this.queue.push({ kind: "event", event: this.#toEvent(m) });
      if (!ready && (delivered >= numPending || m.info.pending === 0)) markReady();
    });

    const abort = (): void => finish({ kind: "stopped" });
    this.signal.addEventListener("abort", abort, { once: true });
    (async () => {
      for await (const s of iterator.status()) {
        if (s.type === "heartbeats_missed") {
          finish({ kind: "restart", reason: "heartbeats-missed" });
        } else if (s.type === "heartbeat" && s.lastConsumerSequence > lastDeliverySeq) {
          // The server says it sent more than we received.
          finish({ kind: "restart", reason: "gap" });
        }
      }
    })().catch((err: unknown) => {
      this.#log.debug("Stopped following the watch's consumer status", { error: err });
    });
    iterator.closed().then((err) => {
      if (!ending.open) return;
      const detail = err ? { detail: err.message } : {};
      if (this.#nc.isClosed()) {
        this.fatal = new WatchError(
          `Stopped watching the "${this.#bucket}" bucket: the NATS connection was closed`,
          this.#bucket,
          err ? { cause: err } : undefined,
        );
        finish({ kind: "stopped" });
      } else {
        finish({ kind: "restart", reason: "closed", ...detail });
      }
    }, (err: unknown) => {
      finish({ kind: "restart", reason: "closed", detail: errorMessage(err) });
    });

    const result = await ending.done;
    session.releaseGate();
    this.signal.removeEventListener("abort", abort);
    iterator.stop();
    await iterator.closed();
    return result;
  }

  /**
   * Subscribes, then creates the server-side consumer, retrying (1 s growing to 5 s) while
   * the bucket does not exist or NATS cannot be reached. Undefined once the watch stops.
   */
  async #openConsumer(): Promise<ConsumerSession | undefined> {
    const js = jetstream(this.#nc);
    // Deliveries go under the connection's inbox prefix (a device may only use its own).
    const prefix = js.getOptions().watcherPrefix;
    const gate = readGateOf(this.#nc);
    const retries = new OpenRetries(this.#log, this.signal, this.#clock);
    for (let attempt = 1; !this.signal.aborted; attempt++) {
      const releaseGate = await gate.acquire(this.signal);
      if (!releaseGate) return undefined;
      const deliverSubject = createInbox(prefix);
      // Subscribed before the consumer exists, so nothing it sends can be missed; messages
      // that arrive before the caller attaches are kept in order.
      const early: JsMsg[] = [];
      let sink: (m: JsMsg) => void = (m) => early.push(m);
      let iterator: ConsumerMessages | undefined;
      try {
        const bound = await js.consumers.getBoundPushConsumer({
          deliver_subject: deliverSubject,
          idle_heartbeat: nanos(this.#heartbeatMs),
        });
        iterator = await bound.consume({ callback: (m) => sink(m) });
        const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
        const info = await jsm.consumers.add(this.#stream, {
          name: `fleet_watch_${nuid.next()}`,
          deliver_subject: deliverSubject,
          // One filter keeps the create subject `CONSUMER.CREATE.<stream>.<name>.<filter>`,
          // which a narrow permission (the operator's, a viewer's) can match.
          filter_subject: this.#filterSubject,
          deliver_policy: DeliverPolicy.LastPerSubject,
          ack_policy: AckPolicy.None,
          flow_control: true,
          idle_heartbeat: nanos(this.#heartbeatMs),
          inactive_threshold: nanos(INACTIVE_THRESHOLD_MS),
          num_replicas: 1,
        });
        if (retries.failing) this.#log.info(`Watching the "${this.#bucket}" bucket now`);
        return {
          iterator,
          numPending: info.num_pending,
          attach: (fn) => {
            for (const m of early.splice(0)) fn(m);
            sink = fn;
          },
          releaseGate,
        };
      } catch (err) {
        releaseGate();
        iterator?.stop();
        await iterator?.closed();
        if (this.#nc.isClosed()) {
          throw new WatchError(
            `Cannot watch the "${this.#bucket}" bucket: the NATS connection is closed`,
            this.#bucket,
            { cause: err },
          );
        }
        await retries.failed(describeOpenError(this.#bucket, err), attempt);
      }
    }
    return undefined;
  }

  #toEvent(m: JsMsg): WatchEvent {
    return kvEntryEvent(m, this.#prefix);
  }
}

function restartMessage(bucket: string, reason: WatchRestartReason): string {
  switch (reason) {
    case "heartbeats-missed":
      return `The watch on the "${bucket}" bucket went silent (the bucket may have been ` +
        `deleted, NATS may have lost its data, or the watch expired while disconnected); ` +
        `reading the bucket again`;
    case "gap":
      return `Some updates from the "${bucket}" bucket were lost in transit; reading the ` +
        `bucket again`;
    case "closed":
      return `NATS ended the watch on the "${bucket}" bucket; reading the bucket again`;
  }
}

function describeOpenError(bucket: string, err: unknown): string {
  if (hasJetStreamCode(err, JetStreamCodes.StreamNotFound)) {
    return `The "${bucket}" bucket does not exist on NATS (yet); waiting for it to be created`;
  }
  const denial = brokerDenial(err);
  if (denial) {
    return `NATS does not allow this process to watch the "${bucket}" bucket ` +
      `(${denial.message}); retrying`;
  }
  if (err instanceof RequestError && err.isNoResponders()) {
    return `NATS has no JetStream to serve the "${bucket}" bucket; retrying`;
  }
  return `Cannot start watching the "${bucket}" bucket (${errorMessage(err)}); retrying`;
}

const BUCKET_RE = /^[-\w]+$/;
const TOKEN_RE = /^[-/=.\w]+$/;

function validateBucket(bucket: string): void {
  if (!BUCKET_RE.test(bucket)) {
    throw new WatchError(
      `Invalid bucket name "${bucket}": use letters, digits, "-" and "_" only`,
      bucket,
    );
  }
}

function validateFilter(bucket: string, filter: string): void {
  const tokens = filter.split(".");
  const ok = tokens.every((t, i) =>
    t === "*" || (t === ">" && i === tokens.length - 1) || (t !== "" && TOKEN_RE.test(t))
  );
  if (!ok) {
    throw new WatchError(
      `Invalid key filter "${filter}" for the "${bucket}" bucket: use dot-separated ` +
        `tokens, "*" for one token, ">" only at the end (e.g. "dev1.>")`,
      bucket,
    );
  }
}
