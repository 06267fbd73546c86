/** The {@link DesiredStateStore} on NATS: the `desired-state` bucket of DESIGN.md §2. */
import type { KV } from "@nats-io/kv";
import {
  Buckets,
  type DeploymentRef,
  DesiredState,
  keys,
  parseJsonWith,
  parseKey,
} from "../core/mod.ts";
import { lazyBucket } from "../adapters/nats/mod.ts";
import type { DesiredStateEvent, DesiredStateStore } from "./desired_state_store.ts";
import { type NatsWatchSettings, watchWithRestarts } from "./_nats_watch.ts";

/** Desired state as keys `<deviceId>.<namespace>.<deployment>` of the `desired-state` bucket. */
export class NatsDesiredStateStore implements DesiredStateStore {
  readonly #settings: NatsWatchSettings;
  readonly #bucket: () => Promise<KV>;

  /** The bucket must exist (see `NatsBucketKeeper`); it is bound to, not created. */
  constructor(settings: NatsWatchSettings) {
    this.#settings = settings;
    // A failed open is tried again on the next write.
    this.#bucket = lazyBucket(settings.nc, Buckets.desiredState);
  }

  async put(deviceId: string, ref: DeploymentRef, value: DesiredState): Promise<void> {
    await (await this.#bucket()).put(keys.desiredState(deviceId, ref), JSON.stringify(value));
  }

  async delete(deviceId: string, ref: DeploymentRef): Promise<void> {
    await (await this.#bucket()).delete(keys.desiredState(deviceId, ref));
  }

  async *watch(signal: AbortSignal): AsyncIterable<DesiredStateEvent> {
    for await (const event of watchWithRestarts(this.#settings, Buckets.desiredState, signal)) {
      if (event.type === "restart" || event.type === "ready") {
        yield event;
        continue;
      }
      // Keys of another shape are not ours to judge.
      const parsed = parseKey.desiredState(event.key);
      if (!parsed) continue;
      if (event.type === "delete") {
        yield { type: "delete", ...parsed };
        continue;
      }
      let value: DesiredState | undefined;
      try {
        value = parseJsonWith(DesiredState, event.value, "desired state");
      } catch (error) {
        // Written by someone else: it differs from anything the operator wants, so it is
        // rewritten; worth a line at debug level only.
        this.#settings.log.debug(`Unreadable desired state at "${event.key}"`, { error });
      }
      yield { type: "put", ...parsed, value };
    }
  }
}
