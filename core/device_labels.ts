/**
 * The label registry (issue 12, item 3): the labels targeting uses are the control plane's,
 * set at enrollment or by a person (`fleet device label`), never what a device reports about
 * itself, and `fleet.nationtech.io/device-id` always equals the device's identity. Pure.
 * @module
 */
import * as z from "zod";
import { DEVICE_ID_LABEL } from "./device_info.ts";
import { FleetError } from "./errors.ts";
import { labelKeyProblem, Labels, labelValueProblem } from "./selector.ts";

/**
 * A device's entry in the registry (nats source: the value at `labels.<deviceId>` in the
 * `device-labels` bucket). An object, not the bare labels, so it can grow.
 */
export const RegisteredLabels = z.object({ labels: Labels });
export type RegisteredLabels = z.infer<typeof RegisteredLabels>;

/**
 * The labels targeting matches for `deviceId`: its registry entry (none: no labels yet) and
 * the device-id label from the identity, which no entry can change.
 */
export function targetingLabels(
  deviceId: string,
  registered: Readonly<Labels> | undefined,
): Labels {
  return { ...registered, [DEVICE_ID_LABEL]: deviceId };
}

/** Labels without the device-id label, which every device has anyway. */
export function withoutDeviceId(labels: Readonly<Labels>): Labels {
  const { [DEVICE_ID_LABEL]: _, ...rest } = labels;
  return rest;
}

/**
 * What a device reports that its targeting labels do not hold (device-id left out): empty
 * when the report and the registry agree.
 */
export function unregisteredLabels(
  reported: Readonly<Record<string, string>>,
  targeting: Readonly<Labels>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(reported).filter(([key, value]) =>
      key !== DEVICE_ID_LABEL && targeting[key] !== value
    ),
  );
}

/** `fleet device label` arguments a person got wrong: the message names the argument and the rule. */
export class LabelEditError extends FleetError {
  override name = "LabelEditError";
  constructor(message: string) {
    super("usage", message);
  }
}

/** Labels to set and keys to remove, as `key=value` and `key-` arguments say (kubectl label). */
export interface LabelEdit {
  set: Labels;
  remove: string[];
}

/**
 * Parses `key=value` (set) and `key-` (remove) arguments.
 * @throws {LabelEditError} for a bad key or value, the device-id label, or a key named twice
 */
export function parseLabelEdit(args: readonly string[]): LabelEdit {
  const edit: LabelEdit = { set: {}, remove: [] };
  const seen = new Set<string>();
  for (const arg of args) {
    const at = arg.indexOf("=");
    const removal = at < 0 && arg.endsWith("-");
    if (at < 0 && !removal) {
      throw new LabelEditError(
        `"${arg}" is neither key=value (set a label) nor key- (remove one)`,
      );
    }
    const key = removal ? arg.slice(0, -1) : arg.slice(0, at);
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) throw new LabelEditError(`Invalid label "${arg}": ${keyProblem}`);
    if (key === DEVICE_ID_LABEL) {
      throw new LabelEditError(
        `${DEVICE_ID_LABEL} is the device's identity: it cannot be set or removed`,
      );
    }
    if (seen.has(key)) throw new LabelEditError(`Label ${key} is named twice`);
    seen.add(key);
    if (removal) {
      edit.remove.push(key);
      continue;
    }
    const value = arg.slice(at + 1);
    const valueProblem = labelValueProblem(value);
    if (valueProblem) {
      throw new LabelEditError(
        `Invalid label ${key}=${
          JSON.stringify(value)
        }: ${valueProblem}, so that deployments can select the device by it`,
      );
    }
    edit.set[key] = value;
  }
  return edit;
}

/**
 * `current` with `edit` applied. As kubectl label: changing a label that has another value needs
 * `overwrite`; removing a label the device does not have changes nothing.
 * @throws {LabelEditError} when a label would change without `overwrite`
 */
export function applyLabelEdit(
  deviceId: string,
  current: Readonly<Labels>,
  edit: LabelEdit,
  overwrite: boolean,
): Labels {
  const next: Labels = withoutDeviceId(current);
  for (const [key, value] of Object.entries(edit.set)) {
    const before = next[key];
    if (before !== undefined && before !== value && !overwrite) {
      throw new LabelEditError(
        `Device ${deviceId} already has ${key}=${before}: pass --overwrite to change it to ${value}`,
      );
    }
    next[key] = value;
  }
  for (const key of edit.remove) delete next[key];
  return next;
}

/**
 * The labels a device reported that a person may copy into the registry: its selectable ones
 * (the device-id label comes from the identity anyway).
 */
export function adoptableLabels(reported: Readonly<Record<string, string>>): Labels {
  return Object.fromEntries(
    Object.entries(withoutDeviceId(reported)).filter(([key, value]) =>
      labelKeyProblem(key) === undefined && labelValueProblem(value) === undefined
    ),
  );
}

/** `key=value,...` of `labels`, sorted, for messages; "(none)" when empty. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value}`);
  return pairs.length === 0 ? "(none)" : pairs.join(",");
}
