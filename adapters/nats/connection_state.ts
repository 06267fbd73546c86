/** Whether a NATS connection is up right now, for readiness probes. */

import type { NatsConnection } from "@nats-io/nats-core";

/** Follows a connection's status events; `connected` is false between disconnect and reconnect. */
export class ConnectionState {
  #connected: boolean;
  readonly #nc: NatsConnection;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#connected = !nc.isClosed();
    void this.#follow();
  }

  get connected(): boolean {
    return this.#connected && !this.#nc.isClosed();
  }

  async #follow(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type === "disconnect") this.#connected = false;
      else if (status.type === "reconnect") this.#connected = true;
    }
  }
}
