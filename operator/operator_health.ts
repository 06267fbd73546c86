/**
 * The operator replica's readiness and what its metrics read: connected to NATS, and either
 * a standby waiting for the lease or the leader once its initial read and first sync are done.
 */

import type { Operator } from "./operator.ts";
import type { OperatorMetricsSource } from "./operator_metrics.ts";

/** Tracks which operator this replica runs now (one per leadership term). */
export class OperatorHealth implements OperatorMetricsSource {
  readonly #connection: { readonly connected: boolean };
  #current: Operator | undefined;
  #ready = false;

  /** `connection` says whether NATS is reachable now (adapters/nats ConnectionState). */
  constructor(connection: { readonly connected: boolean }) {
    this.#connection = connection;
  }

  /** This replica leads with `operator` from now on; ready once its initial read is done. */
  leadWith(operator: Operator): void {
    this.#current = operator;
    this.#ready = false;
    void operator.ready.then(() => {
      if (this.#current === operator) this.#ready = true;
    });
  }

  /** This replica stopped leading (lost the lease or shut down). */
  standBy(): void {
    this.#current = undefined;
    this.#ready = false;
  }

  current(): Operator | undefined {
    return this.#current;
  }

  leading(): boolean {
    return this.#current !== undefined;
  }

  /** Why the replica is not ready, or undefined when it is (a standby is ready). */
  notReady(): string | undefined {
    if (!this.#connection.connected) return "not connected to NATS";
    if (this.#current && !this.#ready) return "reading the fleet's current state";
    return undefined;
  }
}
