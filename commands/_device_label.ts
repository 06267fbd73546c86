/**
 * `fleet device label`: sets the labels deployments select a device by, in the label registry
 * the control plane owns (issue 12, item 3), as kubectl label does for Kubernetes objects.
 */
import { type Command, Option } from "@commander-js/extra-typings";
import {
  adoptableLabels,
  applyLabelEdit,
  formatLabels,
  type LabelEdit,
  parseLabelEdit,
  validateIdentifier,
} from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import {
  type DeviceLabelStore,
  KubeDeviceLabelStore,
  NatsDeviceLabelStore,
  UnknownDeviceError,
} from "../cli/device_labels.ts";
import { loggerFrom, UsageError } from "./_cli.ts";
import { openTarget, withTarget } from "./_kube.ts";

/** The edit the arguments ask for; with --from-reported, what the device reports comes first. */
async function planEdit(
  store: DeviceLabelStore,
  deviceId: string,
  args: string[],
  fromReported: boolean,
): Promise<LabelEdit> {
  const edit = parseLabelEdit(args);
  if (!fromReported) {
    if (args.length === 0) {
      throw new UsageError(
        "Nothing to change: give key=value to set a label, key- to remove one, or --from-reported",
      );
    }
    return edit;
  }
  const reported = await store.reported(deviceId);
  if (reported === undefined) {
    throw new UnknownDeviceError(
      `Device ${deviceId} has never reported, so it has no labels to copy: check the device id (fleet get devices)`,
    );
  }
  return { ...edit, set: { ...adoptableLabels(reported), ...edit.set } };
}

/** Adds `label` to the `device` command. */
export function addLabelCommand(device: Command): void {
  withTarget(
    device.command("label")
      .description(
        "Set or remove the labels deployments select a device by (the control plane's, not what the device reports)",
      )
      .argument("<device-id>", "the device")
      .argument("[labels...]", "key=value to set a label, key- to remove it")
      .addOption(
        new Option("--overwrite", "change a label that already has another value")
          .env("FLEET_LABEL_OVERWRITE"),
      )
      .addOption(
        new Option(
          "--from-reported",
          "copy the labels the device reports about itself (its agent's config) first",
        ).env("FLEET_LABEL_FROM_REPORTED"),
      ),
  )
    .addHelpText(
      "after",
      `
A device's labels decide which deployments it runs. They are kept by the control plane
(nats: the device-labels bucket; kube: the Device object's labels) and set at enrollment or
here; what a device says about itself is shown by fleet get devices, never used to target it.
The label ${"fleet.nationtech.io/device-id"} is always the device's own id.

Examples:
  fleet device label pi-lab-7 site=lab rack=r2
  fleet device label pi-lab-7 site=shop --overwrite
  fleet device label pi-lab-7 rack-
  fleet device label pi-lab-7 --from-reported      # after an upgrade: trust what it reports`,
    )
    .action(async (deviceId, args, flags) => {
      validateIdentifier("device id", deviceId);
      const log = loggerFrom(flags);
      await using target = await openTarget<DeviceLabelStore>(flags, log, {
        kube: (client) => new KubeDeviceLabelStore(client),
        nats: (nc) => new NatsDeviceLabelStore(nc),
      });
      const edit = await planEdit(target.value, deviceId, args, flags.fromReported ?? false);
      const { labels, changed } = await target.value.edit(
        deviceId,
        (current) => applyLabelEdit(deviceId, current, edit, flags.overwrite ?? false),
      );
      printLine(
        `device ${deviceId} ${changed ? "labelled" : "unchanged"}: ${formatLabels(labels)}`,
      );
    });
}
