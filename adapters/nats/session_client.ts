/**
 * The requester's side of a session with a device (DESIGN.md §9 "Sessions"): hears
 * `device-sessions.<deviceId>.<principal>.<sessionId>.out`, grants credit and cancels on
 * `.ctl`. Data is granted only once the caller says it consumed it (wrote it out), so a slow
 * terminal slows the device down instead of filling memory on either side. An exec's stdin
 * goes the other way on `.in`, only as far as the device's `credit` frames allow.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Clock, Timer } from "../../core/clock.ts";
import { headers } from "@nats-io/nats-core";
import type { TerminalSize } from "../../core/device_commands.ts";
import {
  FRAME_HEADER,
  MAX_FRAME_BYTES,
  type OutputStream,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
  SessionEnd,
  SessionNotice,
  sessionSubject,
  StdinCredit,
  STREAM_HEADER,
} from "../../core/device_sessions.ts";
import { parseJsonWith } from "../../core/errors.ts";

/** What arrives from the device: data, a notice for the person, or the end (the last). */
export type SessionEvent =
  | { data: Uint8Array; stream: OutputStream }
  | { notice: string }
  | { end: SessionEnd };

/** A session's ids and its credit window. */
export interface SessionClientOptions {
  deviceId: string;
  principal: string;
  sessionId: string;
  /** Bytes the device may send ahead of what was consumed; the request's first credit. */
  window: number;
  clock: Clock;
}

/** Subscribe before the request goes out, so nothing the device sends is missed. */
export class SessionClient {
  readonly #nc: NatsConnection;
  readonly #options: SessionClientOptions;
  readonly #ctl: string;
  readonly #in: string;
  readonly #sub: Subscription;
  #consumed = 0;
  #granted: number;
  #keepalive: Timer | undefined;
  #closed = false;
  /** Stdin sent, and how far the device lets it go; waiters for more credit. */
  #stdinSent = 0;
  #stdinGranted = 0;
  #stdinWaiters: (() => void)[] = [];

  constructor(nc: NatsConnection, options: SessionClientOptions) {
    this.#nc = nc;
    this.#options = options;
    const { deviceId, principal, sessionId } = options;
    this.#ctl = sessionSubject(deviceId, principal, sessionId, "ctl");
    this.#in = sessionSubject(deviceId, principal, sessionId, "in");
    this.#sub = nc.subscribe(sessionSubject(deviceId, principal, sessionId, "out"));
    this.#granted = options.window;
    this.#armKeepalive();
  }

  /**
   * Data frames as they arrive, then the end. A device that said nothing (no data, no
   * keepalive) for {@link SESSION_IDLE_MS} ends it as `silent`.
   */
  async *events(): AsyncGenerator<SessionEvent> {
    const iterator = this.#sub[Symbol.asyncIterator]();
    const { clock } = this.#options;
    // One watchdog for the whole session, not a timer per message. It wakes the wait at hand,
    // not a promise raced against every message: each race leaves a reaction on a promise that
    // lives as long as the session, holding that race's message, so a session kept every
    // frame it received (measured: 480 MB resident after 250 MB).
    let heardAt = clock.monotonic();
    let silent = false;
    let wake: (() => void) | undefined;
    let watchdog: Timer | undefined;
    const check = () => {
      if (clock.monotonic() - heardAt >= SESSION_IDLE_MS) {
        silent = true;
        return wake?.();
      }
      watchdog = clock.timer(SESSION_IDLE_MS - (clock.monotonic() - heardAt), check);
    };
    watchdog = clock.timer(SESSION_IDLE_MS, check);
    try {
      while (true) {
        const next = silent ? "silent" : await new Promise<
          IteratorResult<Msg> | "silent"
        >((resolve, reject) => {
          wake = () => resolve("silent");
          iterator.next().then(resolve, reject);
        });
        wake = undefined;
        if (next === "silent") {
          yield {
            end: {
              reason: "silent",
              message: `device ${this.#options.deviceId} said nothing for ${
                SESSION_IDLE_MS / 1000
              } s: it went offline or its agent stopped`,
              bytes: this.#consumed,
            },
          };
          return;
        }
        if (next.done) return;
        heardAt = clock.monotonic();
        const msg = next.value;
        const frame = msg.headers?.get(FRAME_HEADER);
        if (frame === "end") {
          yield { end: parseJsonWith(SessionEnd, msg.data, "session end") };
          return;
        }
        if (frame === "credit") {
          this.#stdinCredit(parseJsonWith(StdinCredit, msg.data, "stdin credit").upTo);
          continue;
        }
        if (frame === "notice") {
          yield { notice: parseJsonWith(SessionNotice, msg.data, "session notice").message };
          continue;
        }
        if (frame) continue; // keepalive, or a frame of a newer device
        const stream = msg.headers?.get(STREAM_HEADER) === "stderr" ? "stderr" : "stdout";
        yield { data: msg.data, stream };
      }
    } finally {
      watchdog?.cancel();
      this.close();
    }
  }

  /** The device accepted an exec with stdin: it takes `credit` bytes before granting more. */
  startStdin(credit: number): void {
    this.#stdinCredit(credit);
  }

  /**
   * Sends `data` to the command's stdin, in frames the device's credit allows; resolves once it
   * is all sent, false when the session closed first.
   */
  async sendStdin(data: Uint8Array): Promise<boolean> {
    for (let at = 0; at < data.length;) {
      while (!this.#closed && this.#stdinGranted <= this.#stdinSent) {
        await new Promise<void>((resolve) => this.#stdinWaiters.push(resolve));
      }
      if (this.#closed) return false;
      const room = Math.min(this.#stdinGranted - this.#stdinSent, MAX_FRAME_BYTES);
      const piece = data.subarray(at, at + room);
      this.#nc.publish(this.#in, piece);
      this.#stdinSent += piece.length;
      at += piece.length;
    }
    return true;
  }

  /** The command's stdin ends (it reads end of file). */
  closeStdin(): void {
    if (this.#closed) return;
    const h = headers();
    h.set(FRAME_HEADER, "eof");
    this.#nc.publish(this.#in, new Uint8Array(0), { headers: h });
  }

  /** The person's terminal has a new size. */
  resize(size: TerminalSize): void {
    if (!this.#closed) this.#nc.publish(this.#ctl, JSON.stringify({ type: "resize", ...size }));
  }

  /** The caller wrote `bytes` of data out: the device may send that much more. */
  consumed(bytes: number): void {
    this.#consumed += bytes;
    // Grant in steps of half a window, not per frame.
    if (this.#consumed + this.#options.window - this.#granted >= this.#options.window / 2) {
      this.#grant();
    }
  }

  /** Asks the device to end the session; its end frame follows. */
  cancel(): void {
    if (!this.#closed) this.#nc.publish(this.#ctl, JSON.stringify({ type: "cancel" }));
  }

  /** Stops hearing and granting. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keepalive?.cancel();
    this.#sub.unsubscribe();
    for (const wake of this.#stdinWaiters.splice(0)) wake();
  }

  #stdinCredit(upTo: number): void {
    this.#stdinGranted = Math.max(this.#stdinGranted, upTo);
    for (const wake of this.#stdinWaiters.splice(0)) wake();
  }

  #grant(): void {
    this.#granted = this.#consumed + this.#options.window;
    if (!this.#closed) {
      this.#nc.publish(this.#ctl, JSON.stringify({ type: "credit", upTo: this.#granted }));
    }
  }

  /** Repeats the grant so the device knows the requester is still there. */
  #armKeepalive(): void {
    this.#keepalive = this.#options.clock.timer(SESSION_KEEPALIVE_MS, () => {
      this.#grant();
      if (!this.#closed) this.#armKeepalive();
    }, { unref: true });
  }
}
