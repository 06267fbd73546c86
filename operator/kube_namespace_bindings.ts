/**
 * Namespace bindings of the kube source: each Namespace's annotation
 * `fleet.nationtech.io/device-selector`. Namespaces are cluster objects, so only whoever may
 * edit them (cluster admins) binds; a tenant with rights in the namespace cannot.
 */
import { DEVICE_SELECTOR_ANNOTATION } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { untilAborted } from "../adapters/timers.ts";
import { informer, type KubeClient, NamespaceType } from "../adapters/kube/mod.ts";
import type { BindingEvent, NamespaceBindings } from "./namespace_bindings.ts";
import { ObjectMeta } from "./kube_resources.ts";

export class KubeNamespaceBindings implements NamespaceBindings {
  readonly #client: KubeClient;
  readonly #log: Logger;

  constructor(client: KubeClient, log: Logger) {
    this.#client = client;
    this.#log = log;
  }

  async *events(signal: AbortSignal): AsyncIterable<BindingEvent> {
    /** namespace → binding last delivered: a change elsewhere on a Namespace is no event. */
    const delivered = new Map<string, string | undefined>();
    for await (
      const event of untilAborted(
        informer(this.#client, NamespaceType, { signal, logger: this.#log }),
        signal,
      )
    ) {
      if (event.type === "ready") {
        if (!event.restarted) yield { type: "ready" };
        continue;
      }
      const metadata = ObjectMeta.safeParse((event.object as { metadata?: unknown }).metadata);
      if (!metadata.success) continue;
      const namespace = metadata.data.name;
      const binding = event.type === "delete"
        ? undefined
        : metadata.data.annotations?.[DEVICE_SELECTOR_ANNOTATION];
      if (delivered.has(namespace) && delivered.get(namespace) === binding) continue;
      if (binding === undefined) delivered.delete(namespace);
      else delivered.set(namespace, binding);
      yield { type: "binding", namespace, binding };
    }
  }
}
