/** A {@link SessionTransport} in memory: what a session sent, and messages delivered to it. */
import { SessionEnd } from "../core/device_sessions.ts";
import type { ControlFrame, SessionTransport } from "../agent/session.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One message a session published. */
export interface Sent {
  subject: string;
  data: Uint8Array;
  frame?: ControlFrame | "stderr" | undefined;
}

export class FakeTransport implements SessionTransport {
  readonly sent: Sent[] = [];
  readonly #listeners = new Map<string, (data: Uint8Array, frame?: string) => void>();

  send(subject: string, data: Uint8Array, frame?: ControlFrame | "stderr") {
    this.sent.push({ subject, data, frame });
  }
  listen(subject: string, onMessage: (data: Uint8Array, frame?: string) => void) {
    this.#listeners.set(subject, onMessage);
    return () => this.#listeners.delete(subject);
  }
  /** Delivers `message` (as JSON) on `subject`, as a requester's control. */
  control(subject: string, message: unknown) {
    this.#listeners.get(subject)?.(enc.encode(JSON.stringify(message)));
  }
  /** Delivers raw `data` (a frame of kind `frame`) on `subject`, as a requester's stdin. */
  deliver(subject: string, data: Uint8Array, frame?: string) {
    this.#listeners.get(subject)?.(data, frame);
  }
  listening(subject: string): boolean {
    return this.#listeners.has(subject);
  }
  /** Data bytes sent (stdout and stderr). */
  get dataBytes(): number {
    return this.sent.filter((s) => !s.frame || s.frame === "stderr")
      .reduce((n, s) => n + s.data.length, 0);
  }
  /** The stdout data sent, as text. */
  get text(): string {
    return this.sent.filter((s) => !s.frame).map((s) => dec.decode(s.data)).join("");
  }
  /** The end frame, once sent. */
  get end(): SessionEnd | undefined {
    const end = this.sent.find((s) => s.frame === "end");
    return end && SessionEnd.parse(JSON.parse(dec.decode(end.data)));
  }
  /** The bodies of the frames of `kind` sent, parsed. */
  frames(kind: ControlFrame): unknown[] {
    return this.sent.filter((s) => s.frame === kind).map((s) => JSON.parse(dec.decode(s.data)));
  }
}
