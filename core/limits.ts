/**
 * How much of the broker each identity and each bucket may take (issue 12: limits
 * everywhere), sized for a fleet of 100,000 devices (bench:fleet) on a broker that also fits
 * on a Raspberry Pi with a few GB of free disk.
 *
 * Pure: the operator creates and audits buckets with these, the callout writes the per-role
 * limits into user JWTs and the account limits into the nats-server configuration.
 */

import { Buckets } from "./keys.ts";
import { LEASE_BUCKET } from "./lease.ts";
import type { FleetRole } from "./permissions.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** A bucket's size limits: JetStream refuses a write that would pass either. */
export interface BucketLimits {
  /** Bytes the bucket may hold (stream `max_bytes`; it refuses new writes when full). */
  maxBytes: number;
  /** Largest value, headers included (stream `max_msg_size`). */
  maxValueSize: number;
}

/**
 * The limits of each bucket. nats-server reserves every file stream's `max_bytes` on the disk
 * at creation, so their sum (~3.6 GiB) is what the broker needs free (a Pi with a 16 GB card
 * has it), within the account's default `max_file` ({@link ACCOUNT_JETSTREAM_DEFAULTS}).
 *
 * - `desired-state`: one value per targeted (device, deployment), 3 revisions; a value carries
 *   a deployment's score, so it takes the largest deployment: 100k devices × 3 deployments ×
 *   3 revisions × 1.5 KB is 1.35 GB.
 * - `device-info`: one per device, ~1 KB (labels, inventory; at most 32 annotations of 1 KB).
 * - `device-state`: one per (device, deployment), 3 revisions, ~600 B (lastError is cut at
 *   300 characters): 540 MB for 100k devices with 3 deployments each. A device can make keys under its own prefix: the bucket's bound is what
 *   stops it from filling the disk, and the bucket refuses (never drops) writes when full.
 * - `device-heartbeat`: one per device, under 100 B of JSON.
 * - `fleet-deployments`: 5 revisions of each deployment; one deployment is at most 256 KiB.
 * - `fleet-deployment-status`: one small aggregate per deployment.
 * - `fleet-revisions`: the last 10 workloads of each deployment, each at most 256 KiB.
 */
export function bucketLimits(bucket: string): BucketLimits {
  switch (bucket) {
    case Buckets.desiredState:
      return { maxBytes: 2 * GiB, maxValueSize: MAX_DEPLOYMENT_BYTES };
    case Buckets.deviceInfo:
      return { maxBytes: 256 * MiB, maxValueSize: 64 * KiB };
    case Buckets.deviceState:
      return { maxBytes: 1 * GiB, maxValueSize: 8 * KiB };
    case Buckets.deviceHeartbeat:
      return { maxBytes: 64 * MiB, maxValueSize: 1 * KiB };
    case Buckets.deployments:
      return { maxBytes: 256 * MiB, maxValueSize: MAX_DEPLOYMENT_BYTES };
    case Buckets.deploymentStatus:
      return { maxBytes: 64 * MiB, maxValueSize: 64 * KiB };
    case Buckets.revisions:
      return { maxBytes: 128 * MiB, maxValueSize: MAX_DEPLOYMENT_BYTES };
    case LEASE_BUCKET:
      return { maxBytes: 1 * MiB, maxValueSize: 4 * KiB };
    default:
      return { maxBytes: 64 * MiB, maxValueSize: 64 * KiB };
  }
}

/** Largest stored deployment (and so desired-state value), headers included. */
export const MAX_DEPLOYMENT_BYTES = 256 * KiB;

/**
 * The Fleet account's JetStream limits in the nats-server configuration, unless the callout
 * config says otherwise. `max_consumers` counts per stream: the desired-state stream holds one
 * consumer per device plus the watches of the operator and of people.
 */
export const ACCOUNT_JETSTREAM_DEFAULTS = {
  /** Fleet keeps nothing in memory storage; room for a few memory-backed consumers. */
  maxMemory: 256 * MiB,
  /** The buckets' reservations (~3.6 GiB) with room for the audit stream and releases. */
  maxFile: 8 * GiB,
  maxStreams: 32,
  maxConsumers: 150_000,
} as const;

/**
 * What one connection of the Fleet account may use, in the nats-server configuration (account
 * `limits`). nats-server 2.10 applies these to users the auth callout admits, but not the
 * limits in their user JWTs: this is the bound that holds for every role, so it fits the
 * largest honest client (the operator's watches and request inbox; `fleet apply` of the
 * largest deployment with its KV headers).
 */
export const ACCOUNT_CONNECTION_LIMITS = {
  maxSubscriptions: 512,
  maxPayload: 512 * KiB,
} as const;

/** Per-user limits written into a user JWT (`subs`, `payload`, `data`; -1 is no limit). */
export interface UserLimits {
  subs: number;
  payload: number;
  data: number;
}

/**
 * The limits in the user JWT of each role. A device holds a handful of subscriptions (its
 * inbox, its commands, its desired state) and publishes small reports (at most a 64 KiB
 * device-info); people and the operator read through watches and write deployments. `data`
 * is -1: nats-server enforces no byte budget on users. Note that nats-server 2.10 does not
 * apply JWT limits to callout users at all; {@link ACCOUNT_CONNECTION_LIMITS} is what holds
 * there, and these take over on a server that honours them.
 */
export function userLimits(role: FleetRole): UserLimits {
  switch (role) {
    case "device":
      return { subs: 32, payload: 64 * KiB, data: -1 };
    case "viewer":
      return { subs: 64, payload: 16 * KiB, data: -1 };
    case "maintainer":
      return { subs: 64, payload: ACCOUNT_CONNECTION_LIMITS.maxPayload, data: -1 };
    case "operator":
    case "admin":
      return {
        subs: ACCOUNT_CONNECTION_LIMITS.maxSubscriptions,
        payload: ACCOUNT_CONNECTION_LIMITS.maxPayload,
        data: -1,
      };
  }
}
