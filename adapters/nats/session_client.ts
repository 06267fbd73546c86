/**
 * The requester's side of a session with a device (DESIGN.md §9 "Sessions"): hears
 * `device-sessions.<deviceId>.<principal>.<sessionId>.out`, grants credit and cancels on
 * `.ctl`. Data is granted only once the caller says it consumed it (wrote it out), so a slow
 * terminal slows the device down instead of filling memory on either side.
 */
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Clock, Timer } from "../../core/clock.ts";
import {
  FRAME_HEADER,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
  SessionEnd,
  sessionSubject,
} from "../../core/device_sessions.ts";
import { parseJsonWith } from "../../core/errors.ts";

/** What arrives from the device: data, or the end (the last). */
export type SessionEvent = { data: Uint8Array } | { end: SessionEnd };

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
  readonly #sub: Subscription;
  #consumed = 0;
  #granted: number;
  #keepalive: Timer | undefined;
  #closed = false;

  constructor(nc: NatsConnection, options: SessionClientOptions) {
    this.#nc = nc;
    this.#options = options;
    const { deviceId, principal, sessionId } = options;
    this.#ctl = sessionSubject(deviceId, principal, sessionId, "ctl");
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
    // One watchdog for the whole session, not a timer per message.
    let heardAt = clock.monotonic();
    let watchdog: Timer | undefined;
    const silent = new Promise<"silent">((resolve) => {
      const check = () => {
        if (clock.monotonic() - heardAt >= SESSION_IDLE_MS) return resolve("silent");
        watchdog = clock.timer(SESSION_IDLE_MS - (clock.monotonic() - heardAt), check);
      };
      watchdog = clock.timer(SESSION_IDLE_MS, check);
    });
    try {
      while (true) {
        const next = await Promise.race([iterator.next(), silent]);
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
        if (frame) continue; // keepalive, or a frame of a newer device
        yield { data: msg.data };
      }
    } finally {
      watchdog?.cancel();
      this.close();
    }
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
