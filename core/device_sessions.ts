/**
 * Sessions with one device (DESIGN.md §9 "Sessions"): after the device accepted a request (a
 * command such as `logs`), data flows on
 * `device-sessions.<deviceId>.<principal>.<sessionId>.{in,out,ctl}`. The requester's principal is
 * a subject token of its own, like on command subjects, so the broker can let each person use
 * only the sessions it opened (NATS wildcards match whole tokens).
 *
 * - `out`: device → requester, data frames (raw bytes; an exec's stderr has the header
 *   {@link STREAM_HEADER} `stderr`) and one end frame (header {@link FRAME_HEADER} `end`, a
 *   {@link SessionEnd} body); `keepalive` frames (no body) while there is nothing to send; an
 *   exec's `credit` frames ({@link StdinCredit}: how much stdin the device takes) and `notice`
 *   frames ({@link SessionNotice}: a sentence for the person, e.g. a take-over).
 * - `ctl`: requester → device, {@link SessionControl}: credit, cancel, and a terminal's size.
 * - `in`: requester → device, an exec's stdin: data frames, then one `eof` frame; logs read
 *   none. Stdin is credited the other way round: the device grants (`credit` frames on `out`)
 *   as it writes what it got into the command.
 *
 * Flow control is by credit, as QUIC's MAX_STREAM_DATA: the requester says up to which byte
 * offset of data the device may send (`upTo`, cumulative, so a lost or repeated grant is
 * harmless). The device sends no data beyond it and reads its source no further meanwhile.
 * The requester also repeats its grant every {@link SESSION_KEEPALIVE_MS}; a device that hears
 * nothing for {@link SESSION_IDLE_MS} ends the session as `idle`.
 *
 * Pure: no I/O.
 * @module
 */
import * as z from "zod";
import { validateIdentifier } from "./ids.ts";

/** The first token of every session subject. */
export const SESSIONS_PREFIX = "device-sessions";
/** The channels of a session. */
export const SessionChannels = ["in", "out", "ctl"] as const;
export type SessionChannel = typeof SessionChannels[number];

/**
 * The header of a frame that is not data: on `out` `end`, `keepalive`, `credit` or `notice`;
 * on `in` `eof`. A reader skips kinds it does not know (a newer peer's).
 */
export const FRAME_HEADER = "Fleet-Frame";
/** The header of an exec's data frame from stderr (stdout's have none). */
export const STREAM_HEADER = "Fleet-Stream";
/** Which output a data frame carries. */
export type OutputStream = "stdout" | "stderr";

/** The longest line sent; a longer one is cut there and ends with {@link TRUNCATED_MARKER}. */
export const MAX_LINE_BYTES = 16 * 1024;
/** What ends a line cut at {@link MAX_LINE_BYTES}. */
export const TRUNCATED_MARKER = " [fleet: line truncated]";
/** The most data in one `out` message. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** The smallest credit a requester may start with: room for the longest line, and more. */
export const MIN_CREDIT = MAX_FRAME_BYTES;
/** How often a requester repeats its grant (and a device says it is still there). */
export const SESSION_KEEPALIVE_MS = 5_000;
/** A session whose other side said nothing for this long is over. */
export const SESSION_IDLE_MS = 30_000;

/** A session id: the requester's random choice, one subject token. */
export const SessionId = z.string().regex(
  /^[a-z0-9]{8,32}$/,
  "a session id is 8 to 32 lowercase letters or digits",
);

/** The subject of `channel` of a session. @throws {InvalidIdentifierError} on a bad token. */
export function sessionSubject(
  deviceId: string,
  principal: string,
  sessionId: string,
  channel: SessionChannel,
): string {
  validateIdentifier("device id", deviceId);
  validateIdentifier("principal", principal);
  SessionId.parse(sessionId);
  return `${SESSIONS_PREFIX}.${deviceId}.${principal}.${sessionId}.${channel}`;
}

/** A new session id from 16 random bytes. */
export function newSessionId(random: Uint8Array = crypto.getRandomValues(new Uint8Array(16))) {
  return [...random].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 32);
}

/** Requester → device on `ctl`. */
export const SessionControl = z.discriminatedUnion("type", [
  /** The device may send data up to this byte offset (cumulative). Repeated as a keepalive. */
  z.object({ type: z.literal("credit"), upTo: z.number().int().nonnegative() }),
  /** End the session now. */
  z.object({ type: z.literal("cancel") }),
  /** An exec's terminal has this size now (the person resized the window). */
  z.object({
    type: z.literal("resize"),
    rows: z.number().int().min(1).max(10_000),
    cols: z.number().int().min(1).max(10_000),
  }),
]);
export type SessionControl = z.infer<typeof SessionControl>;

/** Why a session ended. */
export const SessionEndReasons = [
  /** All there was to send was sent (a logs request without follow). */
  "done",
  /** The requester cancelled. */
  "cancelled",
  /** The requester said nothing for {@link SESSION_IDLE_MS}. */
  "idle",
  /** The agent is stopping. */
  "going-away",
  /** The session reached its size limit. */
  "limit",
  /** The device declined (e.g. no journal to read). */
  "refused",
  /** Reading the source failed. */
  "failed",
  /** The command exited; the end's `exitCode` says how. */
  "exited",
  /** Another person took the device's interactive session over (`--force`). */
  "taken-over",
] as const;
export type SessionEndReason = typeof SessionEndReasons[number];

/**
 * The last frame on `out`. `reason` is one of {@link SessionEndReasons} from this version; a
 * newer device may send others, so readers take any string.
 */
export const SessionEnd = z.object({
  reason: z.string(),
  /** A sentence for a person. */
  message: z.string(),
  /** Data bytes the device sent in the session. */
  bytes: z.number().int().nonnegative(),
  /** An exec's exit code, when the command exited. */
  exitCode: z.number().int().optional(),
});
export type SessionEnd = z.infer<typeof SessionEnd>;

/** Device → requester on `out` (`credit` frame): stdin may be sent up to this byte offset. */
export const StdinCredit = z.object({ upTo: z.number().int().nonnegative() });
export type StdinCredit = z.infer<typeof StdinCredit>;

/** Device → requester on `out` (`notice` frame): something the person should know now. */
export const SessionNotice = z.object({ message: z.string() });
export type SessionNotice = z.infer<typeof SessionNotice>;

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const MARKER = encoder.encode(TRUNCATED_MARKER + "\n");

/**
 * Splits a byte stream into lines (each ending with `\n`), at most `maxLineBytes` of text each:
 * a longer line keeps its first bytes (cut at a UTF-8 character boundary) and ends with
 * {@link TRUNCATED_MARKER}; the rest up to its newline is dropped. Holds at most one line.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #prefix: Uint8Array;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** Dropping the rest of a truncated line. */
  #dropping = false;

  /** @param prefix put before every line (e.g. `[web] `) */
  constructor(maxLineBytes = MAX_LINE_BYTES, prefix = "") {
    this.#max = maxLineBytes;
    this.#prefix = encoder.encode(prefix);
  }

  /** The complete lines `chunk` finishes. */
  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, at);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#dropping) {
        const room = this.#max - this.#pendingBytes;
        const piece = chunk.subarray(at, end);
        if (piece.length <= room) {
          this.#add(piece);
        } else {
          this.#add(piece.subarray(0, utf8Boundary(piece, room)));
          lines.push(this.#take(MARKER));
          this.#dropping = true;
        }
      }
      if (nl === -1) break;
      if (this.#dropping) this.#dropping = false;
      else lines.push(this.#take(NEWLINE_BYTES));
      at = nl + 1;
    }
    return lines;
  }

  /** The last line when the stream ended without a newline. */
  flush(): Uint8Array[] {
    if (this.#pendingBytes === 0) return [];
    return [this.#take(NEWLINE_BYTES)];
  }

  #add(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#pending.push(piece.slice());
    this.#pendingBytes += piece.length;
  }

  #take(end: Uint8Array): Uint8Array {
    const parts = [this.#prefix, ...this.#pending, end];
    this.#pending = [];
    this.#pendingBytes = 0;
    return concat(parts);
  }
}

const NEWLINE_BYTES = new Uint8Array([NEWLINE]);

/** The largest length ≤ `n` that does not cut a UTF-8 character of `bytes`. */
function utf8Boundary(bytes: Uint8Array, n: number): number {
  let at = Math.min(n, bytes.length);
  while (at > 0 && at < bytes.length && (bytes[at]! & 0xc0) === 0x80) at--;
  return at;
}

/** One byte array of `parts`. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A frame's worth of data of one output. */
export interface DataFrame {
  data: Uint8Array;
  stream: OutputStream;
}

/**
 * Lines (or chunks) waiting to be sent and the credit to send them: frames take whole lines of
 * one output, never more than the credit left or {@link MAX_FRAME_BYTES}.
 */
export class CreditedLines {
  #lines: DataFrame[] = [];
  #queued = 0;
  #granted: number;
  #sent = 0;

  constructor(initialCredit: number) {
    this.#granted = initialCredit;
  }

  /** Bytes queued, not yet sent. */
  get queued(): number {
    return this.#queued;
  }

  /** Data bytes sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /** The offset up to which data may be sent. */
  get granted(): number {
    return this.#granted;
  }

  /** Queues `line`; a chunk of an exec's output is at most {@link MAX_FRAME_BYTES}. */
  push(line: Uint8Array, stream: OutputStream = "stdout"): void {
    this.#lines.push({ data: line, stream });
    this.#queued += line.length;
  }

  /** Raises the grant to `upTo`; a lower (stale or repeated) grant changes nothing. */
  grant(upTo: number): void {
    this.#granted = Math.max(this.#granted, upTo);
  }

  /**
   * The next frame, at most `limit` bytes more (a session's size bound), or undefined when
   * nothing is queued or the next line does not fit the credit left.
   */
  nextFrame(limit = Infinity): DataFrame | undefined {
    const room = Math.min(this.#granted - this.#sent, MAX_FRAME_BYTES, limit);
    const stream = this.#lines[0]?.stream;
    let bytes = 0;
    let count = 0;
    for (const line of this.#lines) {
      if (line.stream !== stream || bytes + line.data.length > room) break;
      bytes += line.data.length;
      count++;
    }
    if (count === 0 || stream === undefined) return undefined;
    const data = concat(this.#lines.splice(0, count).map((l) => l.data));
    this.#queued -= data.length;
    this.#sent += data.length;
    return { data, stream };
  }
}
