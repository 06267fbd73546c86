/**
 * One session's mechanics on the device (DESIGN.md §9 "Sessions"), whatever it streams (logs,
 * an exec's output): credit-limited sending on `out`, the requester's keepalive, cancel and
 * other controls on `ctl`, the device's keepalive, and one end (frame, audit record) whatever
 * ends it.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { headers } from "@nats-io/nats-core";
import type { Clock, Timer } from "../core/clock.ts";
import type { AuditRecord } from "../core/device_commands.ts";
import {
  CreditedLines,
  FRAME_HEADER,
  MAX_FRAME_BYTES,
  type OutputStream,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
  SessionControl,
  type SessionEnd,
  type SessionEndReason,
  sessionSubject,
  STREAM_HEADER,
} from "../core/device_sessions.ts";
import { parseJsonWith } from "../core/errors.ts";
import type { Logger } from "../adapters/logger.ts";

/** Data queued beyond this stops the reading of the sources until some is sent. */
export const QUEUE_HIGH_WATER = 4 * MAX_FRAME_BYTES;

/** A frame on `out` that is not data. */
export type ControlFrame = "end" | "keepalive" | "credit" | "notice";

/** A session's side of the broker: publish on `out`, hear `ctl` (and an exec's `in`). */
export interface SessionTransport {
  /** Publishes a data frame (of stdout, or of `stderr`), or a `frame` that is not data. */
  send(subject: string, data: Uint8Array, frame?: ControlFrame | "stderr"): void;
  /** Calls `onMessage` with each message on `subject` and its frame kind (data: none); the
   * returned function stops. */
  listen(subject: string, onMessage: (data: Uint8Array, frame?: string) => void): () => void;
}

/** {@link SessionTransport} on a NATS connection. */
export function natsSessionTransport(nc: NatsConnection, log: Logger): SessionTransport {
  return {
    send(subject, data, frame) {
      if (frame === undefined) return nc.publish(subject, data);
      const h = headers();
      if (frame === "stderr") h.set(STREAM_HEADER, frame);
      else h.set(FRAME_HEADER, frame);
      nc.publish(subject, data, { headers: h });
    },
    listen(subject, onMessage) {
      const sub = nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error) log.warn(`The session subscription ${subject} failed: ${error.message}`);
          else onMessage(msg.data, msg.headers?.get(FRAME_HEADER) || undefined);
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

/** How a session ends when its sources are done and all is sent. */
export interface SessionEnding {
  reason: SessionEndReason;
  message: string;
  exitCode?: number;
}

/** The bounds of a session and what it tells its owner. */
export interface SessionLimits {
  /** The requester's first grant. */
  credit: number;
  /** The most data the session sends. */
  maxBytes: number;
  /** Aborted when the session ends, to stop its sources (an exec lets go of its own). */
  abort?: AbortController;
  /** The requester's terminal has a new size (an exec with a TTY). */
  onResize?: (size: { rows: number; cols: number }) => void;
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
  readonly #abort: AbortController | undefined;
  readonly #onResize: SessionLimits["onResize"];
  readonly #stopListening: () => void;
  #idle: Timer | undefined;
  #keepalive: Timer | undefined;
  #lastSent: number;
  #room: (() => void)[] = [];
  #ended: SessionEnd | undefined;
  #limitReached = false;
  #ending: SessionEnding | undefined;
  /** A pump due at the next turn of the event loop. */
  #soon: Timer | undefined;
  readonly #done: Promise<SessionEnd>;
  #resolveDone!: (end: SessionEnd) => void;

  constructor(ctx: SessionContext, origin: SessionOrigin, limits: SessionLimits) {
    this.#ctx = ctx;
    this.#origin = origin;
    this.#lines = new CreditedLines(limits.credit);
    this.#maxBytes = limits.maxBytes;
    this.#abort = limits.abort;
    this.#onResize = limits.onResize;
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
  async push(lines: readonly Uint8Array[], stream: OutputStream = "stdout"): Promise<boolean> {
    if (this.#ended || this.#limitReached) return false;
    for (const line of lines) {
      if (this.#lines.sent + this.#lines.queued + line.length > this.#maxBytes) {
        this.#limitReached = true;
        break;
      }
      this.#lines.push(line, stream);
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

  /** Every source has ended: the session ends as `ending` says once the queue is sent. */
  sourcesEnded(ending: SessionEnding = { reason: "done", message: "all was sent" }): void {
    this.#ending = ending;
    this.#pump();
  }

  /** Sends the requester a frame that is not data: an exec's stdin credit, a notice. */
  tell(frame: "credit" | "notice", body: unknown): void {
    if (this.#ended) return;
    this.#ctx.transport.send(this.#out, new TextEncoder().encode(JSON.stringify(body)), frame);
    this.#lastSent = this.#ctx.clock.monotonic();
  }

  /** Ends the session (once): end frame, audit record, sources stopped. */
  end(reason: SessionEndReason, message: string, exitCode?: number): Promise<SessionEnd> {
    if (this.#ended) return this.#done;
    const end: SessionEnd = {
      reason,
      message,
      bytes: this.#lines.sent,
      ...(exitCode === undefined ? {} : { exitCode }),
    };
    this.#ended = end;
    this.#idle?.cancel();
    this.#keepalive?.cancel();
    this.#soon?.cancel();
    this.#stopListening();
    this.#abort?.abort();
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
      ...(exitCode === undefined ? {} : { exitCode }),
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
    if (control.type === "resize") {
      this.#onResize?.({ rows: control.rows, cols: control.cols });
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
      this.#ctx.transport.send(
        this.#out,
        frame.data,
        frame.stream === "stderr" ? "stderr" : undefined,
      );
      this.#lastSent = this.#ctx.clock.monotonic();
    }
    if (this.#lines.queued < QUEUE_HIGH_WATER) { for (const wake of this.#room.splice(0)) wake(); }
    if (this.#lines.queued > 0) return;
    if (this.#limitReached) {
      void this.end("limit", `the session reached its bound of ${this.#maxBytes} bytes`);
    } else if (this.#ending !== undefined) {
      const { reason, message, exitCode } = this.#ending;
      void this.end(reason, message, exitCode);
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
