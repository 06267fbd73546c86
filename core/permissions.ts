/**
 * The NATS permission templates of DESIGN.md §5: what a device's user may publish and
 * subscribe to (only its own keys and command subjects, plus the narrowest JetStream API
 * subjects its KV watch needs), and the fleet-wide set of the operator and admins.
 *
 * Pure: the auth callout turns these into a user JWT; tests and the docs read them too.
 */

import { validateIdentifier } from "./ids.ts";
import { Buckets, keys } from "./keys.ts";

/** The roles a NATS user can have in Fleet. */
export const FleetRoles = ["device", "operator", "admin"] as const;
/** One of {@link FleetRoles}. */
export type FleetRole = typeof FleetRoles[number];

/** Subjects a user may publish or subscribe to (NATS wildcards `*` and `>` allowed). */
export interface SubjectPermission {
  allow: string[];
}

/**
 * `allow_responses`: the user may publish a reply to the reply subject of a request it
 * received, `max` replies per request within `ttlMs`.
 */
export interface ResponsePermission {
  max: number;
  ttlMs: number;
}

/** A NATS user's permissions (the `permissions` block of a user / the `nats` of a user JWT). */
export interface NatsPermissions {
  pub: SubjectPermission;
  sub: SubjectPermission;
  resp?: ResponsePermission;
}

/** A device's permissions: always with `allow_responses` (it answers its commands). */
export interface DevicePermissions extends NatsPermissions {
  resp: ResponsePermission;
}

/** nats-server's `allow_responses: true`: one reply per request, within two minutes. */
export const DEVICE_RESPONSE_PERMISSION: Readonly<ResponsePermission> = Object.freeze({
  max: 1,
  ttlMs: 120_000,
});

/**
 * The inbox prefix a device's connection must use (`inboxPrefix` of the NATS client):
 * its replies and KV watch deliveries arrive under `<prefix>.>`, the only inbox it may
 * subscribe to. One token, so no other device's prefix can match it.
 *
 * @throws {InvalidIdentifierError} when `deviceId` is not an RFC 1123 label.
 */
export function deviceInboxPrefix(deviceId: string): string {
  validateIdentifier("device id", deviceId);
  return `_INBOX_${deviceId}`;
}

/**
 * The permissions of the device `deviceId` (DESIGN.md §5, verified with `@nats-io/kv` 3.4
 * on nats-server 2.10).
 *
 * Publish:
 * - `$JS.API.CONSUMER.CREATE.KV_desired-state.*.$KV.desired-state.<id>.>`: create the
 *   push consumer of its own desired-state watch (one filter subject, so the filter is
 *   part of the API subject and the server checks it against the consumer config);
 * - `$JS.FC.KV_desired-state.>`: answer that consumer's flow-control requests;
 * - `$KV.device-info.info.<id>`, `$KV.device-state.state.<id>.>`,
 *   `$KV.device-heartbeat.heartbeat.<id>`: its own reports.
 *
 * No `$JS.ACK.>`: the watch's consumer uses `AckPolicy.None`. Never
 * `$JS.API.STREAM.MSG.GET.*` (the key is in the payload, so it would read any value),
 * `$JS.API.STREAM.INFO.*` (its subjects filter lists every key), `$JS.API.>` or `_INBOX.>`.
 *
 * Subscribe: `_INBOX_<id>.>` (replies and watch deliveries; see
 * {@link deviceInboxPrefix}) and `device-commands.<id>.>`. Replies to commands go through
 * `resp` (allow_responses).
 *
 * @throws {InvalidIdentifierError} when `deviceId` is not an RFC 1123 label (so no
 *   wildcard, dot or whitespace can ever widen the set).
 */
export function devicePermissions(deviceId: string): DevicePermissions {
  validateIdentifier("device id", deviceId);
  const desired = Buckets.desiredState;
  return {
    pub: {
      allow: [
        `$JS.API.CONSUMER.CREATE.KV_${desired}.*.$KV.${desired}.${
          keys.desiredStateOfDevice(deviceId)
        }`,
        `$JS.FC.KV_${desired}.>`,
        `$KV.${Buckets.deviceInfo}.${keys.deviceInfo(deviceId)}`,
        `$KV.${Buckets.deviceState}.${keys.deviceStatesOfDevice(deviceId)}`,
        `$KV.${Buckets.deviceHeartbeat}.${keys.heartbeat(deviceId)}`,
      ],
    },
    sub: {
      allow: [
        `${deviceInboxPrefix(deviceId)}.>`,
        `device-commands.${deviceId}.>`,
      ],
    },
    resp: { ...DEVICE_RESPONSE_PERMISSION },
  };
}

/** The operator's and admins' permissions: everything in the Fleet account. */
export function fleetPermissions(): NatsPermissions {
  return { pub: { allow: [">"] }, sub: { allow: [">"] } };
}

/**
 * The permissions of `role`; a device needs its id.
 *
 * @throws {InvalidIdentifierError} for a device without a valid id.
 */
export function permissionsForRole(role: FleetRole, deviceId?: string): NatsPermissions {
  return role === "device" ? devicePermissions(deviceId ?? "") : fleetPermissions();
}
