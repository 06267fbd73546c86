/**
 * Where namespaces' device bindings come from (core/tenancy.ts): the nats source's
 * `fleet-namespaces` bucket, or the kube source's Namespace annotations. Both are written by
 * admins only; the operator reads them.
 * @module
 */

/**
 * A namespace's binding is new, changed or gone (`binding` undefined), or (`ready`) every
 * binding that existed at start has been delivered.
 */
export type BindingEvent =
  | { type: "binding"; namespace: string; binding: string | undefined }
  | { type: "ready" };

/** The namespaces' bindings as they are at start, then every change. */
export interface NamespaceBindings {
  events(signal: AbortSignal): AsyncIterable<BindingEvent>;
}
