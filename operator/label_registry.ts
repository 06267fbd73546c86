/**
 * The port the operator reads the label registry through (issue 12, item 3): the labels
 * targeting matches, owned by the control plane and set by people (`fleet device enroll`,
 * `fleet device label`, on the kube source kubectl), never by the devices. Adapters:
 * `nats_label_registry.ts` (the `device-labels` bucket), `kube_label_registry.ts` (the
 * `Device` objects' labels).
 * @module
 */
import type { Labels } from "../core/mod.ts";

/** A device's registry labels set or removed, or the end of the first complete read. */
export type LabelRegistryEvent =
  | { type: "put"; deviceId: string; labels: Labels }
  | { type: "delete"; deviceId: string }
  /** Every entry that existed at start has been delivered. */
  | { type: "ready" };

/** The registry's entries as they are at start, then every change. */
export interface LabelRegistry {
  events(signal: AbortSignal): AsyncIterable<LabelRegistryEvent>;
}
