/**
 * KV puts for simulators: each put is a plain JetStream publish to `$KV.<bucket>.<key>`
 * (what `kv.put()` sends) whose ack comes back on one inbox subscription per connection.
 * `kv.put()` makes a promise and a timer per put; at 10,000+ puts per second that bookkeeping
 * is what saturates a simulator's thread, not the broker.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import { heldWithin } from "./_timeouts.ts";

const decoder = new TextDecoder();
/** `{"error":…}` rather than `{"stream":…}`: the byte after `{"`. */
const ERROR_ACK = "e".charCodeAt(0);

export class KvPipeline {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  readonly #window: number;
  #waiters: (() => void)[] = [];
  sent = 0;
  acked = 0;
  errors = 0;
  firstError: string | undefined;

  /** `window`: puts in flight at most. */
  constructor(nc: NatsConnection, window: number) {
    this.#nc = nc;
    this.#window = window;
    this.#sub = nc.subscribe(this.#inbox, { callback: (_err, msg) => this.#onAck(msg) });
  }

  get inFlight(): number {
    return this.sent - this.acked - this.errors;
  }

  #onAck(msg: Msg): void {
    // An empty ack is the server's "no responders" status: no stream took the put.
    if (msg.data.length === 0 || msg.data[2] === ERROR_ACK) {
      this.errors++;
      this.firstError ??= msg.data.length === 0
        ? `no stream answered (${msg.headers?.code ?? "?"} ${msg.headers?.description ?? ""})`
        : decoder.decode(msg.data);
    } else {
      this.acked++;
    }
    this.#waiters.shift()?.();
  }

  async put(bucket: string, key: string, value: string): Promise<void> {
    while (this.inFlight >= this.#window) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    this.sent++;
    this.#nc.publish(`$KV.${bucket}.${key}`, value, { reply: this.#inbox });
  }

  /** Waits for every ack; puts still unanswered after `timeoutMs` count as errors. */
  async drain(timeoutMs = 30_000): Promise<void> {
    if (!await heldWithin(() => this.inFlight === 0, timeoutMs, 5)) {
      this.firstError ??= `${this.inFlight} puts had no ack within ${timeoutMs / 1000} s`;
      this.errors += this.inFlight;
    }
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}
