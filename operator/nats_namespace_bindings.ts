/** Namespace bindings of the nats source: the `fleet-namespaces` bucket, key `<namespace>`. */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type Clock,
  identifierProblem,
  NamespaceBinding,
  NAMESPACES_BUCKET,
  parseJsonWith,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { ensureBucket, watchBucket } from "../adapters/nats/mod.ts";
import type { BindingEvent, NamespaceBindings } from "./namespace_bindings.ts";

/** Revisions kept per namespace: an admin may look back at a binding they changed. */
export const NAMESPACES_HISTORY = 5;

export class NatsNamespaceBindings implements NamespaceBindings {
  readonly #o: { nc: NatsConnection; log: Logger; replicas: number; clock: Clock };

  constructor(options: { nc: NatsConnection; log: Logger; replicas: number; clock: Clock }) {
    this.#o = options;
  }

  async *events(signal: AbortSignal): AsyncIterable<BindingEvent> {
    const { nc, log, replicas, clock } = this.#o;
    await ensureBucket(nc, NAMESPACES_BUCKET, { replicas, history: NAMESPACES_HISTORY });
    const known = new Set<string>();
    // During a read after the bucket came back: the keys delivered again (the others are gone).
    let seen: Set<string> | undefined;
    for await (
      const event of watchBucket({
        nc,
        bucket: NAMESPACES_BUCKET,
        logger: log,
        signal,
        clock,
        onRestart: () => seen = new Set(),
      })
    ) {
      if (event.type === "ready") {
        for (const namespace of [...known].filter((ns) => seen && !seen.has(ns))) {
          known.delete(namespace);
          yield { type: "binding", namespace, binding: undefined };
        }
        seen = undefined;
        yield { type: "ready" };
        continue;
      }
      const namespace = event.key;
      if (identifierProblem(namespace) !== undefined) {
        log.warn(`Ignoring key "${namespace}" in ${NAMESPACES_BUCKET}: expected a namespace`);
        continue;
      }
      seen?.add(namespace);
      if (event.type === "delete") {
        known.delete(namespace);
        yield { type: "binding", namespace, binding: undefined };
        continue;
      }
      known.add(namespace);
      let binding: string;
      try {
        binding = parseJsonWith(NamespaceBinding, event.value, `binding of namespace ${namespace}`)
          .deviceSelector;
      } catch (error) {
        // Bound to nothing until an admin rewrites it: an unreadable binding grants no device.
        log.warn(`${(error as Error).message}; it targets no device until an admin rebinds it`);
        binding = "";
      }
      yield { type: "binding", namespace, binding };
    }
  }
}
