/**
 * The NATS permission templates of DESIGN.md §5 and §9: what a device's user may publish and
 * subscribe to (only its own keys and command subjects, plus the narrowest JetStream API
 * subjects its KV watch needs), what the operator service reads and writes, and what people
 * (viewer, maintainer, admin) may read, write and ask of devices, each only in its own name.
 *
 * Pure: the auth callout turns these into a user JWT; tests and the docs read them too.
 */

import { deviceConsumer } from "./device_consumer.ts";
import { AUDIT_STREAM, auditSubject } from "./device_commands.ts";
import { SESSIONS_PREFIX } from "./device_sessions.ts";
import { validateIdentifier } from "./ids.ts";
import { Buckets, keys } from "./keys.ts";
import { LEASE_BUCKET } from "./lease.ts";
import { principalInboxPrefix } from "./principal.ts";
import { NAMESPACES_BUCKET } from "./tenancy.ts";
import { ROLLOUT_ACTIONS_STREAM } from "./rollout_actions.ts";

/**
 * The roles a NATS user can have in Fleet (DESIGN.md §9): a device; the operator, the
 * control-plane service; and people, from least to most trusted.
 */
export const FleetRoles = ["device", "operator", "viewer", "maintainer", "admin"] as const;
/** One of {@link FleetRoles}. */
export type FleetRole = typeof FleetRoles[number];
/** The roles of people. */
export type PersonRole = "viewer" | "maintainer" | "admin";

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
 * - `$JS.API.CONSUMER.INFO.KV_desired-state.device-<id>` and
 *   `$JS.API.CONSUMER.DELETE.KV_desired-state.device-<id>`: the info of the consumer the
 *   operator prepared for it (`core/device_consumer.ts`), and deleting it to read everything
 *   again (the operator re-creates it);
 * - `$KV.device-info.info.<id>`, `$KV.device-state.state.<id>.>`,
 *   `$KV.device-heartbeat.heartbeat.<id>`: its own reports;
 * - `fleet-audit.command.<id>` and `fleet-audit.session.<id>`: the audit records of the commands
 *   it answered and the sessions it held (the stream's acknowledgement comes back to its inbox);
 * - `device-sessions.<id>.*.*.out`: the data of its own sessions, to whoever opened them.
 *
 * No `$JS.API.CONSUMER.CREATE.*`: whoever creates a consumer chooses where the server
 * delivers it (`deliver_subject`), so a device that could create one could make the server
 * publish on any subject. No `$JS.ACK.>` or `$JS.FC.>`: the prepared consumer neither waits
 * for acknowledgements nor uses flow control. Never `$JS.API.STREAM.MSG.GET.*` (the key is in
 * the payload, so it would read any value), `$JS.API.STREAM.INFO.*` (its subjects filter
 * lists every key), `$JS.API.>` or `_INBOX.>`.
 *
 * Subscribe: `_INBOX_<id>.>` (replies and its desired state, delivered on
 * `_INBOX_<id>.desired-state`; see {@link deviceInboxPrefix}), `device-commands.<id>.>` and
 * the `ctl` and `in` channels of its own sessions.
 * Replies to commands go through `resp` (allow_responses).
 *
 * @throws {InvalidIdentifierError} when `deviceId` is not an RFC 1123 label (so no
 *   wildcard, dot or whitespace can ever widen the set).
 */
export function devicePermissions(deviceId: string): DevicePermissions {
  validateIdentifier("device id", deviceId);
  const { stream, name } = deviceConsumer(deviceId);
  return {
    pub: {
      allow: [
        `$JS.API.CONSUMER.INFO.${stream}.${name}`,
        `$JS.API.CONSUMER.DELETE.${stream}.${name}`,
        `$KV.${Buckets.deviceInfo}.${keys.deviceInfo(deviceId)}`,
        `$KV.${Buckets.deviceState}.${keys.deviceStatesOfDevice(deviceId)}`,
        `$KV.${Buckets.deviceHeartbeat}.${keys.heartbeat(deviceId)}`,
        auditSubject("command", deviceId),
        auditSubject("session", deviceId),
        `${SESSIONS_PREFIX}.${deviceId}.*.*.out`,
      ],
    },
    sub: {
      allow: [
        `${deviceInboxPrefix(deviceId)}.>`,
        `device-commands.${deviceId}.>`,
        `${SESSIONS_PREFIX}.${deviceId}.*.*.ctl`,
        `${SESSIONS_PREFIX}.${deviceId}.*.*.in`,
      ],
    },
    resp: { ...DEVICE_RESPONSE_PERMISSION },
  };
}

const API = "$JS.API";

/**
 * Reading a bucket as the KV client does: stream info (`Kvm.create` of an existing bucket; with
 * a subjects filter it lists keys), single gets (direct or through the stream API) and, unless
 * `watch` is false, consumers for watches and key listings (their filter is part of the API
 * subject), their info (`kv.keys()` asks it) and flow-control replies.
 */
function readBucket(bucket: string, watch = true): string[] {
  const stream = `KV_${bucket}`;
  return [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.DIRECT.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}.$KV.${bucket}.>`,
    `${API}.STREAM.MSG.GET.${stream}`,
    ...watch
      ? [
        `${API}.CONSUMER.CREATE.${stream}.*.$KV.${bucket}.>`,
        `${API}.CONSUMER.INFO.${stream}.*`,
        `$JS.FC.${stream}.>`,
      ]
      : [],
  ];
}

/** Creating a bucket, changing its settings in place, and removing consumers its watches left. */
function ownBucket(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    `${API}.STREAM.CREATE.${stream}`,
    `${API}.STREAM.UPDATE.${stream}`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
  ];
}

function writeBucket(bucket: string): string {
  return `$KV.${bucket}.>`;
}

/** The buckets the operator and people read: DESIGN.md §2's and the namespace bindings. */
function readableBuckets(): string[] {
  return [...Object.values(Buckets), NAMESPACES_BUCKET];
}

/**
 * The permissions of the operator service `principal`: every bucket it keeps (create, change
 * in place, read), writes only to desired state, deployment status, revisions and the leader
 * lease, the durable consumers it prepares for devices on the desired-state stream (create,
 * look up, list, delete, and hear of their deletion), and its own inbox. It keeps the rollout
 * actions stream and reads it through an ordered consumer (create, pull, delete on a reset),
 * but publishes no action: those are people's, in their own names.
 * No command subject: the control plane asks nothing of devices (DESIGN.md §9). Not
 * `$JS.API.>`: it can neither delete nor purge a stream, nor touch any other stream.
 *
 * @throws {InvalidIdentifierError} when `principal` is not an RFC 1123 label.
 */
export function operatorPermissions(principal: string): NatsPermissions {
  const desired = `KV_${Buckets.desiredState}`;
  const buckets = [...readableBuckets(), LEASE_BUCKET];
  return {
    pub: {
      allow: [
        `${API}.INFO`,
        ...buckets.flatMap((b) => [...readBucket(b), ...ownBucket(b)]),
        `${API}.CONSUMER.CREATE.${desired}.>`,
        `${API}.CONSUMER.DURABLE.CREATE.${desired}.*`,
        `${API}.CONSUMER.NAMES.${desired}`,
        ...[Buckets.desiredState, Buckets.deploymentStatus, Buckets.revisions, LEASE_BUCKET]
          .map(writeBucket),
        // It keeps the audit stream (creates it), but writes and reads no record.
        `${API}.STREAM.CREATE.${AUDIT_STREAM}`,
        `${API}.STREAM.INFO.${AUDIT_STREAM}`,
        `${API}.STREAM.CREATE.${ROLLOUT_ACTIONS_STREAM}`,
        `${API}.STREAM.INFO.${ROLLOUT_ACTIONS_STREAM}`,
        `${API}.CONSUMER.CREATE.${ROLLOUT_ACTIONS_STREAM}.>`,
        `${API}.CONSUMER.MSG.NEXT.${ROLLOUT_ACTIONS_STREAM}.*`,
        `${API}.CONSUMER.DELETE.${ROLLOUT_ACTIONS_STREAM}.*`,
      ],
    },
    sub: {
      allow: [
        `${principalInboxPrefix(principal)}.>`,
        `$JS.EVENT.ADVISORY.CONSUMER.DELETED.${desired}.*`,
      ],
    },
  };
}

/** The command verbs of each person's role (DESIGN.md §9); `*` is every verb. */
export const ROLE_VERBS: Readonly<Record<PersonRole, readonly string[]>> = {
  viewer: ["ping"],
  maintainer: ["ping", "diag", "restart", "reconcile", "logs", "rollout"],
  admin: ["*"],
};

/** The verbs that open a session (DESIGN.md §9 "Sessions"). */
const SESSION_VERBS = ["logs", "exec"];

/**
 * The session subjects of `principal`, whose role allows `verbs`: on any device, only the
 * sessions it opened (its principal is their third token): it writes `ctl` and `in`, reads `out`.
 * None for a role without a verb that opens one.
 */
function sessionPermissions(
  principal: string,
  verbs: readonly string[],
): { pub: string[]; sub: string[] } {
  if (!verbs.some((v) => v === "*" || SESSION_VERBS.includes(v))) return { pub: [], sub: [] };
  const own = `${SESSIONS_PREFIX}.*.${principal}.*`;
  return { pub: [`${own}.ctl`, `${own}.in`], sub: [`${own}.out`] };
}

/**
 * The permissions of the person `principal` in `role`:
 * - viewer: read every bucket and the audit trail (direct gets only: a consumer's creator
 *   chooses where the server delivers it), and `ping`. Desired state without consumers (single gets, key
 *   listings through stream info): creating a consumer there could take over the one the
 *   operator prepared for a device, however its filter is written (nats-server lets a create
 *   request without `action` update an existing consumer);
 * - maintainer: also apply and delete deployments, the verbs diag, restart, reconcile, logs and
 *   rollout, and rollout actions (pause, resume, approve, retry) as
 *   `fleet-rollout-actions.<namespace>.<deployment>.<principal>`: the stream's acknowledgement
 *   comes back to its inbox;
 * - admin: the whole JetStream API, every KV and object store, every verb, every subscription.
 *
 * Commands only as `device-commands.*.<verb>.<principal>`, rollout actions only as
 * `fleet-rollout-actions.*.*.<principal>`: no one asks in another's name.
 * Sessions (maintainer, admin) only as `device-sessions.*.<principal>.*.<channel>`: no one
 * writes into or reads another's. Subscriptions only under the own inbox and sessions, except
 * for admins.
 *
 * @throws {InvalidIdentifierError} when `principal` is not an RFC 1123 label.
 */
export function personPermissions(role: PersonRole, principal: string): NatsPermissions {
  const inbox = `${principalInboxPrefix(principal)}.>`;
  const commands = ROLE_VERBS[role].map((verb) => `device-commands.*.${verb}.${principal}`);
  const sessions = sessionPermissions(principal, ROLE_VERBS[role]);
  const actions = role === "viewer" ? [] : [`${ROLLOUT_ACTIONS_STREAM}.*.*.${principal}`];
  if (role === "admin") {
    return {
      pub: { allow: ["$JS.>", "$KV.>", "$O.>", ...commands, ...actions, ...sessions.pub] },
      sub: { allow: [">"] },
    };
  }
  const reads = readableBuckets().flatMap((b) => readBucket(b, b !== Buckets.desiredState));
  const writes = role === "maintainer" ? [writeBucket(Buckets.deployments)] : [];
  return {
    pub: {
      allow: [
        `${API}.INFO`,
        ...reads,
        `${API}.DIRECT.GET.${AUDIT_STREAM}`,
        ...writes,
        ...commands,
        ...actions,
        ...sessions.pub,
      ],
    },
    sub: { allow: [inbox, ...sessions.sub] },
  };
}

/**
 * The permissions of `role`: `identity` is the device id of a device, the principal of anyone
 * else.
 *
 * @throws {InvalidIdentifierError} when `identity` is not an RFC 1123 label.
 */
export function permissionsForRole(role: FleetRole, identity: string): NatsPermissions {
  switch (role) {
    case "device":
      return devicePermissions(identity);
    case "operator":
      return operatorPermissions(identity);
    default:
      return personPermissions(role, identity);
  }
}
