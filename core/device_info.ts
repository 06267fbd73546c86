import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { InstanceId } from "./agent_instances.ts";
import { LabelKey, type Labels, labelValueProblem, suggestLabelValue } from "./selector.ts";

/** Label every device carries, so a selector can name one device. */
export const DEVICE_ID_LABEL = "fleet.nationtech.io/device-id";

export const Inventory = z.object({
  hostname: z.string(),
  arch: z.string(),
  os: z.string(),
  kernel: z.string(),
  cpuCores: z.number().int().nonnegative(),
  memoryMb: z.number().int().nonnegative(),
  agentVersion: z.string(),
});
export type Inventory = z.infer<typeof Inventory>;

/** Longest device label value on the wire; older agents sent free text up to this length. */
export const DEVICE_LABEL_VALUE_MAX = 256;

const NO_CONTROL_CHARACTERS = /^[^\p{Cc}]*$/u;

/**
 * A device's labels as read from the wire or an agent config: keys follow the Kubernetes rule,
 * values may be free text such as "Building 4, Room 12", which configs of older versions held.
 * Only values that are Kubernetes label values can be selected ({@link splitDeviceLabels});
 * where a person sets labels, other values are refused.
 */
export const DeviceLabels = z.record(
  LabelKey,
  z.string().max(
    DEVICE_LABEL_VALUE_MAX,
    `label values are at most ${DEVICE_LABEL_VALUE_MAX} characters`,
  )
    .regex(NO_CONTROL_CHARACTERS, "label values must not contain control characters"),
);
export type DeviceLabels = z.infer<typeof DeviceLabels>;

/** Longest device description, and longest annotation value. */
export const DEVICE_TEXT_MAX = 1024;
/** Most annotations a device may carry. */
export const DEVICE_ANNOTATIONS_MAX = 32;

/** Free text about a device (shown, never selected), as a person sets it: one line. */
export const DeviceDescription = z.string()
  .max(DEVICE_TEXT_MAX, `a description is at most ${DEVICE_TEXT_MAX} characters`)
  .regex(NO_CONTROL_CHARACTERS, "a description is one line, without control characters");

/**
 * Free text a person keeps on a device under a label-like key (shown, never selected), as a
 * person sets it.
 */
export const DeviceAnnotations = z.record(
  LabelKey,
  z.string()
    .max(DEVICE_TEXT_MAX, `annotation values are at most ${DEVICE_TEXT_MAX} characters`)
    .regex(NO_CONTROL_CHARACTERS, "annotation values are one line, without control characters"),
).refine((annotations) => Object.keys(annotations).length <= DEVICE_ANNOTATIONS_MAX, {
  message: `a device has at most ${DEVICE_ANNOTATIONS_MAX} annotations`,
});
export type DeviceAnnotations = z.infer<typeof DeviceAnnotations>;

/**
 * What an agent says about its device (value in `device-info`). `labels` are what selectors
 * match; the optional fields are newer (older readers ignore them) and never selected.
 */
export const DeviceInfo = z.object({
  deviceId: identifierSchema("device id"),
  labels: DeviceLabels,
  /** Configured labels whose value is not a Kubernetes label value, so no selector matches them. */
  unselectableLabels: DeviceLabels.optional(),
  description: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  inventory: Inventory,
  updatedAt: z.string(),
  /** The agent process that wrote it (core/agent_instances.ts); absent from older agents. */
  instance: InstanceId.optional(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

/** Config labels plus the device-id label, which always wins. */
export function deviceLabels(deviceId: string, configured: Readonly<Labels>): Labels {
  return { ...configured, [DEVICE_ID_LABEL]: deviceId };
}

/** A device's labels split by whether a selector can match them. */
export interface SplitLabels {
  /** Labels whose value is a Kubernetes label value. */
  selectable: Labels;
  /** The others, as they were written. */
  unselectable: DeviceLabels;
}

/** Splits labels into those a selector can match and those it never can. */
export function splitDeviceLabels(labels: Readonly<DeviceLabels>): SplitLabels {
  const split: SplitLabels = { selectable: {}, unselectable: {} };
  for (const [key, value] of Object.entries(labels)) {
    if (labelValueProblem(value) === undefined) split.selectable[key] = value;
    else split.unselectable[key] = value;
  }
  return split;
}

/**
 * `info` with only selectable values in `labels`, the others moved to `unselectableLabels`:
 * an agent of an older version publishes its free-text values among its labels, and no
 * reader may select on them.
 */
export function withSelectableLabels(info: DeviceInfo): DeviceInfo {
  const { selectable, unselectable } = splitDeviceLabels(info.labels);
  const moved = { ...info.unselectableLabels, ...unselectable };
  const { unselectableLabels: _, ...rest } = info;
  return Object.keys(moved).length === 0
    ? { ...rest, labels: selectable }
    : { ...rest, labels: selectable, unselectableLabels: moved };
}

/** A label no selector can match, why, and a valid value to use instead. */
export interface UnselectableLabel {
  key: string;
  value: string;
  /** Names the value and the Kubernetes label value rule. */
  problem: string;
  /** A valid value close to it; "" when the text has no letter or digit to keep. */
  suggestion: string;
}

/** The labels of `labels` that no selector can match, each with why and a valid form. */
export function unselectableLabels(labels: Readonly<DeviceLabels>): UnselectableLabel[] {
  return Object.entries(labels).flatMap(([key, value]) => {
    const problem = labelValueProblem(value);
    return problem === undefined
      ? []
      : [{ key, value, problem, suggestion: suggestLabelValue(value) }];
  });
}
