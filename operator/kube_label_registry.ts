/**
 * The {@link LabelRegistry} of the kube source: the labels of the cluster-scoped `Device`
 * objects, set by people (`kubectl label fleetdev`, `fleet device label --target kube`). The
 * operator itself writes only the device-id label there, and reported labels to the spec.
 */
import type { Logger } from "../adapters/logger.ts";
import { untilAborted } from "../adapters/timers.ts";
import { informer, type KubeClient } from "../adapters/kube/mod.ts";
import { DeviceMetadata } from "../crd/device_resource.ts";
import type { LabelRegistry, LabelRegistryEvent } from "./label_registry.ts";
import { DeviceType } from "./kube_resources.ts";

export class KubeLabelRegistry implements LabelRegistry {
  readonly #client: KubeClient;
  readonly #log: Logger;

  constructor(client: KubeClient, log: Logger) {
    this.#client = client;
    this.#log = log.with({ component: "device-labels" });
  }

  async *events(signal: AbortSignal): AsyncIterable<LabelRegistryEvent> {
    const known = new Map<string, string>();
    for await (
      const event of untilAborted(
        informer(this.#client, DeviceType, { signal, logger: this.#log }),
        signal,
      )
    ) {
      if (event.type === "ready") {
        if (!event.restarted) yield { type: "ready" };
        continue;
      }
      const parsed = DeviceMetadata.safeParse(event.object.metadata);
      if (!parsed.success) {
        this.#log.warn(`Ignoring a Device object with unreadable metadata`, {
          name: event.object.metadata?.name,
        });
        continue;
      }
      const { name, labels = {} } = parsed.data;
      if (event.type === "delete") {
        // No relabelling: the operator re-creates the object of a device that still reports,
        // with these labels (kube_devices.ts); one that left the fleet is targeted by nothing.
        known.delete(name);
        continue;
      }
      // Status writes change the object too: only a change of labels is an event.
      const json = JSON.stringify(labels);
      if (known.get(name) === json) continue;
      known.set(name, json);
      yield { type: "put", deviceId: name, labels };
    }
  }
}
