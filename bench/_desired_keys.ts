/** The desired-state keys in NATS, followed through a watch: the fan-out the benchmarks time. */
import type { NatsConnection } from "@nats-io/nats-core";
import { Buckets, parseKey } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { watchBucket, type WatchEvent } from "../adapters/nats/mod.ts";

export class DesiredKeys {
  readonly keys = new Set<string>();

  /** Follows the bucket until `signal` aborts; `onEvent` sees every event first. */
  follow(
    nc: NatsConnection,
    log: Logger,
    signal: AbortSignal,
    onEvent?: (e: WatchEvent) => void,
  ): Promise<void> {
    return (async () => {
      for await (
        const e of watchBucket({ nc, bucket: Buckets.desiredState, logger: log, signal })
      ) {
        onEvent?.(e);
        if (e.type === "put" && parseKey.desiredState(e.key)) this.keys.add(e.key);
        else if (e.type === "delete") this.keys.delete(e.key);
      }
    })();
  }
}
