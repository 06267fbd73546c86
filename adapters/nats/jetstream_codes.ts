/**
 * The JetStream API error codes Fleet acts on, and the one test for them. By code, never by
 * message text: the code is the server's contract, the text is not. nats.js's
 * `JetStreamApiCodes` names some of them; the others are nats-server's own (its errors.json).
 * @module
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";

export const JetStreamCodes = {
  /** `JSClusterNoPeersErrF`: too few servers with JetStream to place every copy. */
  ClusterNoPeers: 10005,
  /** `JSStreamMessageExceedsMaximumErr`: the value is larger than the stream allows. */
  MessageExceedsMaximum: 10054,
  /** `JSStreamNameExistErr`: the stream exists with another configuration. */
  StreamNameInUse: 10058,
  StreamNotFound: JetStreamApiCodes.StreamNotFound,
  /** A compare-and-set write that expected another last revision of the key. */
  WrongLastSequence: JetStreamApiCodes.StreamWrongLastSequence,
  /** The same, where the key had no revision the write could name. */
  WrongLastSequenceUnknown: JetStreamApiCodes.StreamWrongLastSequenceUnknown,
  ConsumerNotFound: JetStreamApiCodes.ConsumerNotFound,
  /** `JSConsumerAlreadyExists`: the consumer exists with another configuration. */
  ConsumerExists: 10148,
} as const;

/** Whether `error` is JetStream's API answering with one of `codes`. */
export function hasJetStreamCode(error: unknown, ...codes: number[]): error is JetStreamApiError {
  return error instanceof JetStreamApiError && codes.includes(error.code);
}
