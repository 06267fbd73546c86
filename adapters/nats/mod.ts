/**
 * The NATS adapter: the long-lived connection with plain-words status logging, the KV
 * buckets of DESIGN.md §2 and a resilient bucket watch that reports complete reads. The
 * nats-server processes that tests and `fleet demo` run live in `sandbox/` and `testing/`.
 *
 * @module
 */

export {
  applyBucketLimits,
  BucketError,
  type BucketName,
  Buckets,
  type BucketSettings,
  ensureBucket,
  ensureBucketRetrying,
  isMaxPayloadExceeded,
  isValueTooLarge,
  isWrongLastSequence,
  lazyBucket,
  openBucket,
  refuseRollups,
} from "./buckets.ts";
export {
  connectNats,
  connectNatsInBackground,
  type ConnectNatsOptions,
  installConnectionResetGuard,
  NatsConnectError,
} from "./connection.ts";
export {
  type CredentialOptions,
  type CredentialSource,
  noCredentials,
  userPasswordCredentials,
} from "./credentials.ts";
export {
  type FeedRestart,
  followDeviceConsumer,
  type FollowDeviceConsumerOptions,
} from "./device_feed.ts";
export {
  watchBucket,
  type WatchBucketOptions,
  WatchError,
  type WatchEvent,
  type WatchRestart,
  type WatchRestartReason,
} from "./kv_watch.ts";
export {
  type NatsTls,
  natsTlsFromConfig,
  PIN_COMMAND,
  PIN_PATTERN,
  secretTransportProblem,
} from "./transport.ts";
export { type BucketEntry, readBucket, readBucketEntries } from "./snapshot.ts";
export { ConnectionState } from "./connection_state.ts";
export { ensureAuditStream, publishAudit, readAudit, type StoredAuditRecord } from "./audit.ts";
export { ensureRolloutActionsStream, publishRolloutAction } from "./rollout_actions.ts";
export { deniedByBroker } from "./denied.ts";
export { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";
