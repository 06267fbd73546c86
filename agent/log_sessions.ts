/**
 * `logs` sessions (DESIGN.md §9 "Sessions"): a logs request the device accepts starts a session
 * that streams the selected containers' logs (or the agent's journal) as lines on
 * `device-sessions.<ownId>.<principal>.<sessionId>.out`, only as far as the requester's credit
 * on `.ctl` allows. A source is read no further while the lines queued for sending fill
 * {@link QUEUE_HIGH_WATER}, so a slow reader slows Podman down instead of growing the agent.
 *
 * A session ends, with an end frame that says why, when all is sent (`done`), on the
 * requester's cancel, when the requester said nothing for {@link SESSION_IDLE_MS} (`idle`), at
 * the size bound (`limit`), when reading fails, and when the agent stops (`going-away`). Each
 * leaves an audit record on `fleet-audit.session.<ownId>`.
 *
 * The session mechanics (credit, keepalive, idle, end frames, audit) are {@link Session}'s; what
 * a logs session reads is {@link LogSessions}'. Exec is meant to reuse the former.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { headers } from "@nats-io/nats-core";
import type { Clock, Timer } from "../core/clock.ts";
import {
  auditArguments,
  type AuditRecord,
  type LogReadOptions,
  logSources,
  type LogsRequest,
  type LogsResult,
  sinceSeconds,
} from "../core/device_commands.ts";
import {
  CreditedLines,
  FRAME_HEADER,
  LineSplitter,
  MAX_FRAME_BYTES,
  MAX_LINE_BYTES,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
  SessionControl,
  type SessionEnd,
  type SessionEndReason,
  sessionSubject,
} from "../core/device_sessions.ts";
import { parseJsonWith } from "../core/errors.ts";
import { JournalUnavailableError } from "../adapters/host/journal.ts";
import type { Logger } from "../adapters/logger.ts";
import { CommandRefused } from "./command_responder.ts";
import type { ContainerRuntime } from "./runtime.ts";

/** The most data one logs session sends. */
export const LOGS_MAX_BYTES = 256 * 1024 * 1024;
/** The most sessions open at once on a device. */
export const MAX_SESSIONS = 16;
/** Lines queued beyond this stop the reading of the sources until some are sent. */
export const QUEUE_HIGH_WATER = 4 * MAX_FRAME_BYTES;

/** A session's side of the broker: publish on `out`, hear `ctl`. */
export interface SessionTransport {
  /** Publishes a data frame, or with `frame` an end or keepalive frame. */
  send(subject: string, data: Uint8Array, frame?: "end" | "keepalive"): void;
  /** Calls `onMessage` with each message on `subject`; the returned function stops. */
  listen(subject: string, onMessage: (data: Uint8Array) => void): () => void;
}

/** {@link SessionTransport} on a NATS connection. */
export function natsSessionTransport(nc: NatsConnection, log: Logger): SessionTransport {
  return {
    send(subject, data, frame) {
      if (frame === undefined) return nc.publish(subject, data);
      const h = headers();
      h.set(FRAME_HEADER, frame);
      nc.publish(subject, data, { headers: h });
    },
    listen(subject, onMessage) {
      const sub = nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error) log.warn(`The session subscription ${subject} failed: ${error.message}`);
          else onMessage(msg.data);
        },
      });
      return () => sub.unsubscribe();
    },
  };
}

/** What a session needs from the agent. */
export interface SessionContext {
  deviceId: string;
  transport: SessionTransport;
  clock: Clock;
  log: Logger;
  /** Stores the session's audit record; a failure is logged. */
  audit: (record: AuditRecord) => Promise<void>;
}

/** Who opened a session, for its subjects and audit record. */
export interface SessionOrigin {
  principal: string;
  sessionId: string;
  requestId: string;
  verb: string;
  arguments: Record<string, string>;
}

/**
 * One session's mechanics: credit-limited sending of queued lines, the requester's keepalive
 * and cancel, the device's keepalive, and one end (frame, audit record) whatever ends it.
 */
export class Session {
  readonly #ctx: SessionContext;
  readonly #origin: SessionOrigin;
  readonly #out: string;
  readonly #lines: CreditedLines;
  readonly #maxBytes: number;
  readonly #startedAt: number;
  readonly #start: number;
  readonly #abort: AbortController;
  readonly #stopListening: () => void;
  #idle: Timer | undefined;
  #keepalive: Timer | undefined;
  #lastSent: number;
  #room: (() => void)[] = [];
  #ended: SessionEnd | undefined;
  #limitReached = false;
  #sourcesEnded = false;
  /** A pump due at the next turn of the event loop. */
  #soon: Timer | undefined;
  readonly #done: Promise<SessionEnd>;
  #resolveDone!: (end: SessionEnd) => void;

  /**
   * @param limits.credit the requester's first grant
   * @param limits.maxBytes the most data the session sends
   * @param limits.abort aborted when the session ends, to stop its sources
   */
  constructor(
    ctx: SessionContext,
    origin: SessionOrigin,
    limits: { credit: number; maxBytes: number; abort: AbortController },
  ) {
    this.#ctx = ctx;
    this.#origin = origin;
    this.#lines = new CreditedLines(limits.credit);
    this.#maxBytes = limits.maxBytes;
    this.#abort = limits.abort;
    this.#startedAt = ctx.clock.now();
    this.#start = ctx.clock.monotonic();
    this.#lastSent = this.#start;
    this.#done = new Promise((resolve) => this.#resolveDone = resolve);
    const subject = (channel: "out" | "ctl") =>
      sessionSubject(ctx.deviceId, origin.principal, origin.sessionId, channel);
    this.#out = subject("out");
    this.#stopListening = ctx.transport.listen(subject("ctl"), (data) => this.#control(data));
    this.#armIdle();
    this.#armKeepalive();
  }

  /** Whether it has ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** Resolves with how the session ended. */
  get done(): Promise<SessionEnd> {
    return this.#done;
  }

  /**
   * Queues `lines` (what one read of a source gave) for sending, in frames as large as the
   * credit allows; resolves when there is room for more, so a source that awaits it is read no
   * faster than its lines go out. False once the session is over or at its bound.
   */
  async push(lines: readonly Uint8Array[]): Promise<boolean> {
    if (this.#ended || this.#limitReached) return false;
    for (const line of lines) {
      if (this.#lines.sent + this.#lines.queued + line.length > this.#maxBytes) {
        this.#limitReached = true;
        break;
      }
      this.#lines.push(line);
    }
    // A source read line by line (podman sends each log line as its own write) would make a
    // message of each; less than a frame waits for the next turn of the event loop to grow.
    if (this.#lines.queued >= MAX_FRAME_BYTES || this.#limitReached) this.#pump();
    else this.#pumpSoon();
    while (this.#lines.queued >= QUEUE_HIGH_WATER && !this.#ended) {
      await new Promise<void>((resolve) => this.#room.push(resolve));
    }
    return this.#ended === undefined && !this.#limitReached;
  }

  /** Every source has ended: the session ends once the queue is sent. */
  sourcesEnded(): void {
    this.#sourcesEnded = true;
    this.#pump();
  }

  /** Ends the session (once): end frame, audit record, sources stopped. */
  end(reason: SessionEndReason, message: string): Promise<SessionEnd> {
    if (this.#ended) return this.#done;
    const end: SessionEnd = { reason, message, bytes: this.#lines.sent };
    this.#ended = end;
    this.#idle?.cancel();
    this.#keepalive?.cancel();
    this.#soon?.cancel();
    this.#stopListening();
    this.#abort.abort();
    for (const wake of this.#room.splice(0)) wake();
    const { transport, clock, log } = this.#ctx;
    transport.send(this.#out, new TextEncoder().encode(JSON.stringify(end)), "end");
    const o = this.#origin;
    const record: AuditRecord = {
      kind: "session",
      deviceId: this.#ctx.deviceId,
      principal: o.principal,
      verb: o.verb,
      requestId: o.requestId,
      arguments: o.arguments,
      startedAt: this.#startedAt,
      durationMs: clock.monotonic() - this.#start,
      outcome: reason === "failed" ? "failed" : reason === "refused" ? "refused" : "ok",
      reason: `${reason}: ${message}`,
      sessionId: o.sessionId,
      bytes: end.bytes,
    };
    void this.#ctx.audit(record).catch((error) =>
      log.warn(`Could not write the audit record of session ${o.sessionId}: ${error.message}`)
    ).finally(() => this.#resolveDone(end));
    return this.#done;
  }

  #control(data: Uint8Array): void {
    if (this.#ended) return;
    let control: SessionControl;
    try {
      control = parseJsonWith(SessionControl, data, "session control");
    } catch (error) {
      this.#ctx.log.debug(`Ignoring a session control message: ${(error as Error).message}`);
      return;
    }
    this.#armIdle();
    if (control.type === "cancel") {
      void this.end("cancelled", "the requester cancelled");
      return;
    }
    this.#lines.grant(control.upTo);
    this.#pump();
  }

  #pumpSoon(): void {
    this.#soon ??= this.#ctx.clock.timer(0, () => {
      this.#soon = undefined;
      this.#pump();
    });
  }

  /** Sends what the credit allows; wakes the sources when there is room; ends when due. */
  #pump(): void {
    this.#soon?.cancel();
    this.#soon = undefined;
    if (this.#ended) return;
    for (let frame = this.#lines.nextFrame(); frame; frame = this.#lines.nextFrame()) {
      this.#ctx.transport.send(this.#out, frame);
      this.#lastSent = this.#ctx.clock.monotonic();
    }
    if (this.#lines.queued < QUEUE_HIGH_WATER) { for (const wake of this.#room.splice(0)) wake(); }
    if (this.#lines.queued > 0) return;
    if (this.#limitReached) {
      void this.end("limit", `the session reached its bound of ${this.#maxBytes} bytes`);
    } else if (this.#sourcesEnded) {
      void this.end("done", "all was sent");
    }
  }

  #armIdle(): void {
    this.#idle?.cancel();
    this.#idle = this.#ctx.clock.timer(SESSION_IDLE_MS, () => {
      void this.end(
        "idle",
        `the requester said nothing for ${SESSION_IDLE_MS / 1000} s (no credit, no keepalive)`,
      );
    }, { unref: true });
  }

  /** Says the device is still there when nothing was sent for a keepalive interval. */
  #armKeepalive(): void {
    this.#keepalive = this.#ctx.clock.timer(SESSION_KEEPALIVE_MS, () => {
      if (this.#ended) return;
      if (this.#ctx.clock.monotonic() - this.#lastSent >= SESSION_KEEPALIVE_MS) {
        this.#ctx.transport.send(this.#out, new Uint8Array(0), "keepalive");
        this.#lastSent = this.#ctx.clock.monotonic();
      }
      this.#armKeepalive();
    }, { unref: true });
  }
}

/** What logs sessions read. */
export interface LogSessionsOptions extends SessionContext {
  runtime: Pick<ContainerRuntime, "listManaged" | "logs">;
  /** The agent's own journal. @throws {JournalUnavailableError} when there is none to read. */
  journal: (options: LogReadOptions, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
  /** @default LOGS_MAX_BYTES */
  maxBytes?: number;
}

/** The open logs sessions of a device: opens them (the `logs` verb) and ends them all. */
export class LogSessions {
  readonly #options: LogSessionsOptions;
  readonly #open = new Map<string, Session>();

  constructor(options: LogSessionsOptions) {
    this.#options = options;
  }

  /** Sessions open now. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Accepts `request` from `principal`: opens its sources, then streams them in a session.
   * @throws {CommandRefused} naming why it is declined (nothing to read, a bound, a bad since).
   */
  async open(request: LogsRequest, principal: string): Promise<LogsResult> {
    const o = this.#options;
    if (this.#open.size >= MAX_SESSIONS) {
      throw new CommandRefused(`this device already has ${MAX_SESSIONS} sessions open`);
    }
    if (this.#open.has(request.sessionId)) {
      throw new CommandRefused(`session ${request.sessionId} is already open`);
    }
    const since = sinceSeconds(request.since, o.clock.now());
    if ("problem" in since) throw new CommandRefused(since.problem);
    const sources = logSources(await o.runtime.listManaged(o.deviceId), request);
    if ("problem" in sources) throw new CommandRefused(sources.problem);
    const read: LogReadOptions = {
      follow: request.follow ?? false,
      timestamps: request.timestamps ?? false,
      tail: request.tail,
      sinceSeconds: since.seconds,
    };
    // The sources first: what cannot be read is refused before a session exists (the
    // command's own audit record says why).
    const abort = new AbortController();
    let streams: { name: string; stream: ReadableStream<Uint8Array> }[];
    try {
      streams = "agent" in sources
        ? [{ name: "agent", stream: await o.journal(read, abort.signal) }]
        : await Promise.all(sources.containers.map(async (c) => ({
          name: c.service,
          stream: await o.runtime.logs(c.containerId, read, abort.signal),
        })));
    } catch (error) {
      abort.abort();
      if (error instanceof JournalUnavailableError) throw new CommandRefused(error.message);
      throw error;
    }
    const maxBytes = o.maxBytes ?? LOGS_MAX_BYTES;
    const session = new Session(o, {
      principal,
      sessionId: request.sessionId,
      requestId: request.requestId,
      verb: "logs",
      arguments: logsAuditArguments(request),
    }, { credit: request.credit, maxBytes, abort });
    this.#open.set(request.sessionId, session);
    void session.done.then(() => this.#open.delete(request.sessionId));
    // Several sources: each line says whose it is.
    const prefixed = streams.length > 1;
    let left = streams.length;
    for (const { name, stream } of streams) {
      void this.#read(session, stream, prefixed ? `[${name}] ` : "").then(() => {
        if (--left === 0) session.sourcesEnded();
      });
    }
    return {
      sessionId: request.sessionId,
      sources: streams.map((s) => s.name),
      maxLineBytes: MAX_LINE_BYTES,
      maxBytes,
    };
  }

  /** Ends every open session with `reason` and waits for their audit records. */
  async endAll(reason: SessionEndReason, message: string): Promise<void> {
    await Promise.all([...this.#open.values()].map((s) => s.end(reason, message)));
  }

  /** Reads `stream` into `session` line by line, as fast as the session takes them. */
  async #read(session: Session, stream: ReadableStream<Uint8Array>, prefix: string) {
    const splitter = new LineSplitter(MAX_LINE_BYTES, prefix);
    const reader = stream.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (!await session.push(done ? splitter.flush() : splitter.push(value)) || done) return;
      }
    } catch (error) {
      if (!session.ended) {
        void session.end("failed", `reading the logs failed: ${(error as Error).message}`);
      }
    } finally {
      void reader.cancel().catch(() => {
        // Already closed or errored: nothing left to release.
      });
    }
  }
}

/** A logs request's audit arguments: what was asked, no secret. */
function logsAuditArguments(request: LogsRequest): Record<string, string> {
  return {
    ...auditArguments(request),
    ...(request.agent ? { agent: "true" } : {}),
    ...(request.follow ? { follow: "true" } : {}),
    ...(request.tail === undefined ? {} : { tail: String(request.tail) }),
    ...(request.since === undefined ? {} : { since: request.since }),
  };
}
