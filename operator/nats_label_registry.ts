/**
 * The {@link LabelRegistry} of the nats source: the `device-labels` bucket, key
 * `labels.<deviceId>`, written by people (never by devices: their NATS permissions do not
 * name it). An unreadable entry is logged and left out.
 */
import { Buckets, parseJsonWith, parseKey, RegisteredLabels } from "../core/mod.ts";
import { watchBucket } from "../adapters/nats/mod.ts";
import type { NatsWatchSettings } from "./_nats_watch.ts";
import type { LabelRegistry, LabelRegistryEvent } from "./label_registry.ts";

export class NatsLabelRegistry implements LabelRegistry {
  readonly #settings: NatsWatchSettings;

  constructor(settings: NatsWatchSettings) {
    this.#settings = settings;
  }

  async *events(signal: AbortSignal): AsyncIterable<LabelRegistryEvent> {
    const { nc, log, clock } = this.#settings;
    // No re-read handling: like the deployments, a registry that broker data loss took keeps
    // its last labels in this process instead of untargeting every device at once.
    for await (
      const event of watchBucket({ nc, bucket: Buckets.deviceLabels, logger: log, signal, clock })
    ) {
      if (event.type === "ready") {
        if (!event.restarted) yield { type: "ready" };
        continue;
      }
      const deviceId = parseKey.deviceLabels(event.key);
      if (!deviceId) {
        log.warn(
          `Ignoring key "${event.key}" in ${Buckets.deviceLabels}: expected labels.<device id>`,
        );
        continue;
      }
      if (event.type === "delete") {
        yield { type: "delete", deviceId };
        continue;
      }
      try {
        const { labels } = parseJsonWith(RegisteredLabels, event.value, `labels of ${deviceId}`);
        yield { type: "put", deviceId, labels };
      } catch (error) {
        log.warn(`Ignoring unreadable registry labels: ${(error as Error).message}`);
      }
    }
  }
}
