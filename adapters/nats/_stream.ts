/** Creating a JetStream stream of the control plane once, whoever comes first. */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";

/**
 * Creates the stream `config.name` unless it exists; one that exists keeps its settings.
 *
 * @returns whether it had to be created
 * @throws {Error} naming the stream when NATS cannot tell or cannot create it
 */
export async function ensureStream(
  nc: NatsConnection,
  config: Partial<StreamConfig> & { name: string },
): Promise<boolean> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  try {
    await jsm.streams.info(config.name);
    return false;
  } catch (error) {
    if (!hasJetStreamCode(error, JetStreamCodes.StreamNotFound)) {
      throw new Error(
        `Cannot look up the "${config.name}" stream on NATS: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  try {
    await jsm.streams.add(config);
    return true;
  } catch (error) {
    // Created meanwhile by another operator.
    if (hasJetStreamCode(error, JetStreamCodes.StreamNameInUse)) return false;
    throw new Error(
      `Cannot create the "${config.name}" stream on NATS: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
