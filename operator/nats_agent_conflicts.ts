/** The {@link AgentConflictStore} on NATS: `<deviceId>.agent-conflict` keys of `desired-state`. */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Buckets, InstanceConflict, keys, parseJsonWith, parseKey } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { lazyBucket } from "../adapters/nats/mod.ts";
import type { AgentConflictStore } from "./agent_conflict_store.ts";

export class NatsAgentConflictStore implements AgentConflictStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #bucket: () => Promise<KV>;

  /** The bucket must exist (see `NatsBucketKeeper`); it is bound to, not created. */
  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
    this.#bucket = lazyBucket(nc, Buckets.desiredState);
  }

  /**
   * Lists the keys with the stream's subject index rather than a consumer: people read this
   * (`fleet get devices`) and may not create consumers on desired state, where one could take
   * over the consumer the operator prepared for a device.
   */
  async load(): Promise<Map<string, InstanceConflict>> {
    const kv = await this.#bucket();
    const conflicts = new Map<string, InstanceConflict>();
    const prefix = `$KV.${Buckets.desiredState}.`;
    const jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    const { state } = await jsm.streams.info(`KV_${Buckets.desiredState}`, {
      subjects_filter: `${prefix}${keys.agentConflicts()}`,
    });
    for (const key of Object.keys(state.subjects ?? {}).map((s) => s.slice(prefix.length))) {
      const deviceId = parseKey.agentConflict(key);
      const entry = deviceId ? await kv.get(key) : null;
      if (!deviceId || entry === null || entry.operation !== "PUT") continue;
      try {
        conflicts.set(
          deviceId,
          parseJsonWith(InstanceConflict, entry.string(), `agent conflict of ${deviceId}`),
        );
      } catch (error) {
        // Judged again from the next heartbeats, and rewritten.
        this.#log.warn(`Ignoring ${key}: ${(error as Error).message}`);
      }
    }
    return conflicts;
  }

  async put(conflict: InstanceConflict): Promise<void> {
    await (await this.#bucket()).put(
      keys.agentConflict(conflict.deviceId),
      JSON.stringify(conflict),
    );
  }

  async delete(deviceId: string): Promise<void> {
    await (await this.#bucket()).delete(keys.agentConflict(deviceId));
  }
}
