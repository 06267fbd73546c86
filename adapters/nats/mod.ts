/**
 * The NATS adapter: the long-lived connection with plain-words status logging, the KV
 * buckets of DESIGN.md §2, a resilient bucket watch that reports complete reads, and a
 * real nats-server process for tests and `fleet demo`.
 *
 * @module
 */

export {
  BucketError,
  type BucketName,
  Buckets,
  type BucketSettings,
  ensureBucket,
  ensureBucketRetrying,
  openBucket,
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
  watchBucket,
  type WatchBucketOptions,
  WatchError,
  type WatchEvent,
  type WatchRestart,
  type WatchRestartReason,
} from "./kv_watch.ts";
export {
  NATS_SERVER_BIN_ENV,
  type NatsServer,
  NatsServerError,
  type NatsServerOptions,
  startNatsServer,
} from "./server_process.ts";
export { readBucket } from "./snapshot.ts";
