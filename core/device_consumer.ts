/**
 * The one JetStream consumer through which a device reads its desired state (DESIGN.md §5):
 * the operator creates it, with a filter on the device's keys and a delivery subject under the
 * device's inbox prefix; the device only receives from it, asks for its info and deletes it to
 * read everything again. A device never creates a consumer, so it cannot choose where the
 * server delivers.
 *
 * Pure: names only; the NATS adapters turn them into consumer configs and API calls.
 * @module
 */
import { identifierProblem, validateIdentifier } from "./ids.ts";
import { Buckets, keys } from "./keys.ts";
import { deviceInboxPrefix } from "./permissions.ts";

const PREFIX = "device-";

/** Where device `deviceId`'s desired state comes from. */
export interface DeviceConsumer {
  /** The stream of the `desired-state` bucket. */
  stream: string;
  /** The durable consumer's name: `device-<deviceId>`. */
  name: string;
  /** The device's keys: `$KV.desired-state.<deviceId>.>`. */
  filterSubject: string;
  /** Where the server pushes them: `_INBOX_<deviceId>.desired-state`, only this device's. */
  deliverSubject: string;
}

/**
 * The consumer of device `deviceId`.
 * @throws {InvalidIdentifierError} when `deviceId` is not an RFC 1123 label.
 */
export function deviceConsumer(deviceId: string): DeviceConsumer {
  validateIdentifier("device id", deviceId);
  const bucket = Buckets.desiredState;
  return {
    stream: `KV_${bucket}`,
    name: `${PREFIX}${deviceId}`,
    filterSubject: `$KV.${bucket}.${keys.desiredStateOfDevice(deviceId)}`,
    deliverSubject: `${deviceInboxPrefix(deviceId)}.${bucket}`,
  };
}

/** The device a consumer name belongs to; undefined for any other consumer. */
export function deviceOfConsumer(name: string): string | undefined {
  if (!name.startsWith(PREFIX)) return undefined;
  const id = name.slice(PREFIX.length);
  return identifierProblem(id) === undefined ? id : undefined;
}
