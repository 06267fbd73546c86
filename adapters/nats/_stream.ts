/** Creating a JetStream stream of the control plane once, whoever comes first. */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";

/** JetStream's "stream name already in use": someone else created it first. */
const STREAM_NAME_IN_USE = 10058;

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
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) {
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
    if (error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE) return false;
    throw new Error(
      `Cannot create the "${config.name}" stream on NATS: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
