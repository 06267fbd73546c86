/**
 * A device's desired state, read from the consumer the operator prepared for it
 * (`core/device_consumer.ts`): the device creates no consumer, so it cannot choose where the
 * server delivers; it only receives on its own inbox, asks for the consumer's info and deletes
 * it to have it re-created from the start (DESIGN.md §5).
 *
 * The consumer is durable, with no acknowledgements: a read starts when this process sees a
 * consumer from its first delivery (a new consumer, or one whose deliveries it followed
 * without a gap); anything else — a consumer that delivered while this process was away, a
 * gap — is deleted, and the read starts again once the operator has re-created it. Several
 * processes on one delivery subject (two agents running as one device) each see every
 * delivery; one deleting the consumer makes the others start a new read too, never delete it
 * again. Events are those of `kv_watch.ts`: puts and deletes in stream order, and `ready` after
 * each complete read.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type ConsumerInfo,
  type ConsumerMessages,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Clock } from "../../core/clock.ts";
import type { DeviceConsumer } from "../../core/device_consumer.ts";
import { systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { drainFeed, Ending, OpenRetries, QueueFeed } from "./_feed.ts";
import { errorMessage } from "../../core/errors.ts";
import { kvEntryEvent } from "./_kv_entry.ts";
import { brokerDenial } from "./denied.ts";
import { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";
import { WatchError, type WatchEvent } from "./kv_watch.ts";

/**
 * Passed to `onRestart` before the entries of a new read: the consumer was re-created (this
 * process or another one of the device deleted it, or broker data loss took it).
 */
export interface FeedRestart {
  /** The number of the read that starts (2 for the first restart). */
  read: number;
}

/** Options of {@link followDeviceConsumer}. */
export interface FollowDeviceConsumerOptions {
  nc: NatsConnection;
  consumer: DeviceConsumer;
  logger: Logger;
  /** Ends the feed: the iteration finishes after the events already delivered. */
  signal: AbortSignal;
  /**
   * Called, in order with the events, just before the first event of a new read. After the
   * `ready` that ends that read, a key the caller knew that was not delivered again since
   * this call no longer exists.
   */
  onRestart?: (restart: FeedRestart) => void;
  /** Times the pauses between attempts. @default systemClock */
  clock?: Clock;
}

/**
 * Follows the device's consumer until `signal` aborts. Neither an unreachable server nor a
 * consumer that does not exist (yet) ends it: they are logged and retried.
 *
 * @throws {WatchError} from the iteration when the connection is closed for good.
 */
export function followDeviceConsumer(
  options: FollowDeviceConsumerOptions,
): AsyncIterable<WatchEvent> {
  return { [Symbol.asyncIterator]: () => drainFeed(new DeviceFeed(options)) };
}

/** How following one subscription ended: open it again (resuming if nothing was missed). */
type FollowEnd = { kind: "stopped" } | { kind: "reopen"; why: string };

/**
 * How a subscription starts: `resume` where the last one left off, `start` a read at the
 * consumer's first delivery, or `reset`: delete the consumer and read the re-created one.
 */
type SessionMode = "resume" | "start" | "reset";

/** A subscription to the delivery subject, opened against the consumer `info` describes. */
interface Session {
  iterator: ConsumerMessages;
  info: ConsumerInfo;
  mode: SessionMode;
  /** Delivers the messages received so far, then every later one, to `fn`. */
  attach(fn: (m: JsMsg) => void): void;
}

const LOST = "Some desired-state updates were lost in transit";

class DeviceFeed extends QueueFeed<WatchEvent, FeedRestart> {
  readonly #nc: NatsConnection;
  readonly #consumer: DeviceConsumer;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** Reads started; 0 before the first. */
  #read = 0;
  #ready = false;
  /** The last delivery seen from the consumer of the current read, and its stream sequence. */
  #lastDseq = 0;
  #lastStreamSeq = 0;

  constructor(options: FollowDeviceConsumerOptions) {
    super(options.signal, options.onRestart);
    this.#nc = options.nc;
    this.#consumer = options.consumer;
    this.#prefix = options.consumer.filterSubject.replace(/[^.]+\.>$/, "");
    this.#log = options.logger.with({ component: "desired-state-feed" });
    this.#clock = options.clock ?? systemClock;
  }

  protected failure(err: unknown): Error {
    return err instanceof WatchError ? err : new WatchError(
      `Reading the desired state failed: ${errorMessage(err)}`,
      this.#consumer.stream,
      { cause: err },
    );
  }

  protected async run(): Promise<void> {
    while (!this.signal.aborted) {
      const session = await this.#open();
      if (!session) return;
      const end = await this.#follow(session);
      if (end.kind === "stopped") return;
      this.#log.info(`${end.why}; reading the desired state again`);
    }
  }

  /** Subscribes to the consumer once it exists, retrying 1 s growing to 5 s. */
  async #open(): Promise<Session | undefined> {
    const { stream, name, deliverSubject } = this.#consumer;
    const retries = new OpenRetries(this.#log, this.signal, this.#clock);
    for (let attempt = 1; !this.signal.aborted; attempt++) {
      let iterator: ConsumerMessages | undefined;
      try {
        const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
        const before = await jsm.consumers.info(stream, name);
        const heartbeat = before.config.idle_heartbeat;
        const early: JsMsg[] = [];
        let sink: (m: JsMsg) => void = (m) => early.push(m);
        const bound = await jetstream(this.#nc).consumers.getBoundPushConsumer({
          deliver_subject: deliverSubject,
          ...(heartbeat ? { idle_heartbeat: heartbeat } : {}),
        });
        iterator = await bound.consume({ callback: (m) => sink(m) });
        // Asked again now that we receive: what it delivered since is in `early`.
        const info = await jsm.consumers.info(stream, name);
        if (info.created !== before.created) {
          // Re-created between the two questions: look again at once.
          iterator.stop();
          await iterator.closed();
          continue;
        }
        if (retries.failing) this.#log.info("Reading the desired state now");
        return {
          iterator,
          info,
          mode: this.#modeFor(info, early[0]),
          attach: (fn) => {
            for (const m of early.splice(0)) fn(m);
            sink = fn;
          },
        };
      } catch (err) {
        iterator?.stop();
        await iterator?.closed();
        if (this.#nc.isClosed()) {
          throw new WatchError(
            "Cannot read the desired state: the NATS connection is closed",
            stream,
            { cause: err },
          );
        }
        await retries.failed(describeOpenError(this.#consumer, err), attempt);
      }
    }
    return undefined;
  }

  /** Whether this process saw everything the consumer delivered, from `first` on. */
  #modeFor(info: ConsumerInfo, first: JsMsg | undefined): SessionMode {
    const { consumer_seq, stream_seq } = info.delivered;
    if (
      this.#lastDseq > 0 && consumer_seq === this.#lastDseq && stream_seq === this.#lastStreamSeq
    ) return "resume";
    if (consumer_seq === 0 || first?.info.deliverySequence === 1) return "start";
    return "reset";
  }

  /** Streams the session's deliveries into the queue until it must be replaced. */
  async #follow(session: Session): Promise<FollowEnd> {
    const { iterator, info } = session;
    /** The consumer was deleted: the read starts at the re-created one's first delivery. */
    let awaitingNew = session.mode === "reset";
    if (session.mode === "start") {
      this.#newRead();
      if (info.delivered.consumer_seq === 0 && info.num_pending === 0) this.#markReady();
    }

    const ending = new Ending<FollowEnd>();
    const finish = (value: FollowEnd): void => ending.decide(value);

    session.attach((m) => {
      if (!ending.open) return;
      if (!this.#fromOwnConsumer(m)) return;
      const dseq = m.info.deliverySequence;
      if (awaitingNew || (dseq === 1 && this.#lastDseq > 0)) {
        // What the deleted consumer still sent is left out; the new one starts at 1.
        if (dseq !== 1) return;
        awaitingNew = false;
        this.#newRead();
      }
      if (dseq > this.#lastDseq + 1) return finish({ kind: "reopen", why: LOST });
      if (dseq <= this.#lastDseq) return;
      this.#lastDseq = dseq;
      if (m.seq <= this.#lastStreamSeq) return;
      this.#lastStreamSeq = m.seq;
      this.queue.push({ kind: "event", event: kvEntryEvent(m, this.#prefix) });
      if (m.info.pending === 0) this.#markReady();
    });

    const abort = (): void => finish({ kind: "stopped" });
    this.signal.addEventListener("abort", abort, { once: true });
    if (this.signal.aborted) abort(); // while the subscription was being opened
    (async () => {
      for await (const s of iterator.status()) {
        if (s.type === "heartbeats_missed") {
          finish({ kind: "reopen", why: "The desired-state consumer went silent" });
        } else if (s.type === "heartbeat") {
          const last = s.lastConsumerSequence;
          if (last === 0 && (awaitingNew || this.#lastDseq > 0)) {
            // A new consumer with nothing for this device: a complete, empty read.
            awaitingNew = false;
            this.#newRead();
            this.#markReady();
          } else if (last === this.#lastDseq && !awaitingNew) {
            // Idle with nothing missed: everything there is has been delivered.
            this.#markReady();
          } else {
            finish({ kind: "reopen", why: LOST });
          }
        }
      }
    })().catch((err: unknown) => {
      this.#log.debug("Stopped following the consumer's status", { error: err });
    });
    iterator.closed().then((err) => {
      if (this.#nc.isClosed()) {
        this.fatal = new WatchError(
          "Stopped reading the desired state: the NATS connection was closed",
          this.#consumer.stream,
          err ? { cause: err } : undefined,
        );
        finish({ kind: "stopped" });
      } else {
        finish({ kind: "reopen", why: "NATS ended the desired-state subscription" });
      }
    }, (err: unknown) => {
      finish({
        kind: "reopen",
        why: `The desired-state subscription failed: ${errorMessage(err)}`,
      });
    });

    if (awaitingNew) {
      this.#log.info(
        "The desired-state consumer delivered what this agent has not seen; asking the " +
          "control plane for the whole desired state",
        { delivered: info.delivered.consumer_seq },
      );
      await this.#deleteConsumer();
    }
    const result = await ending.done;
    this.signal.removeEventListener("abort", abort);
    iterator.stop();
    await iterator.closed();
    return result;
  }

  /**
   * Whether `m` comes from this device's consumer. Whoever may create a consumer on another
   * bucket can point its deliveries at this device's subject: such messages are dropped, so
   * they neither pose as desired state nor break the sequence that detects lost updates.
   */
  #fromOwnConsumer(m: JsMsg): boolean {
    let origin = "a message that is no consumer delivery";
    try {
      const { stream, consumer } = m.info;
      if (
        stream === this.#consumer.stream && consumer === this.#consumer.name &&
        m.subject.startsWith(this.#prefix)
      ) return true;
      origin = `a delivery of consumer ${consumer} on ${stream}`;
    } catch {
      // No JetStream reply subject: not from a consumer at all.
    }
    this.#log.warn(
      `Ignoring ${origin} (subject ${m.subject}) sent to this device's desired-state subject`,
    );
    return false;
  }

  /** A read starts: the first one silently, the others announced to `onRestart`. */
  #newRead(): void {
    this.#read++;
    this.#ready = false;
    this.#lastDseq = 0;
    this.#lastStreamSeq = 0;
    if (this.#read > 1) this.queue.push({ kind: "restart", restart: { read: this.#read } });
  }

  #markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.queue.push({
      kind: "event",
      event: { type: "ready", read: this.#read, restarted: this.#read > 1 },
    });
  }

  /** Deletes the consumer, so that the operator re-creates it and it delivers from the start. */
  async #deleteConsumer(): Promise<void> {
    const { stream, name } = this.#consumer;
    try {
      const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
      await jsm.consumers.delete(stream, name);
    } catch (err) {
      // Already gone: the operator re-creates it either way. Otherwise the next heartbeat
      // shows the same consumer, and this starts over.
      if (!hasJetStreamCode(err, JetStreamCodes.ConsumerNotFound)) {
        this.#log.warn(`Could not delete the desired-state consumer: ${errorMessage(err)}`);
      }
    }
  }
}

function describeOpenError(consumer: DeviceConsumer, err: unknown): string {
  if (hasJetStreamCode(err, JetStreamCodes.ConsumerNotFound)) {
    return `The control plane has not prepared this device's desired-state consumer ` +
      `"${consumer.name}" yet; running from the local copy and waiting for it`;
  }
  if (hasJetStreamCode(err, JetStreamCodes.StreamNotFound)) {
    return `The desired-state bucket does not exist on NATS (yet); waiting for it`;
  }
  const denial = brokerDenial(err);
  if (denial) {
    return `NATS does not allow this device to read its desired-state consumer ` +
      `"${consumer.name}" (${denial.message}); retrying`;
  }
  return `Cannot read the desired state (${errorMessage(err)}); retrying`;
}
