import { Command, Option } from "@commander-js/extra-typings";
import { logFormatOption, loggerFrom, logLevelOption } from "./_cli.ts";
import { rotateKeyCommand } from "./_device_rotate_key.ts";
import { addLabelCommand } from "./_device_label.ts";
import { addCommandVerbs } from "./_device_commands.ts";
import { enrollOptions, planEnroll, runEnroll } from "./_enroll.ts";
import { connectTarget, planSsh, sshOptions } from "./_ssh.ts";

function enrollCommand(): Command {
  const command = new Command("enroll")
    .description(
      "Turn a Debian machine (this one, or one over SSH) into a fleet device: podman, the fleet-agent user and service, config, key; waits for its first heartbeat",
    )
    .addOption(
      new Option("--device-id <id>", "the device's id (a DNS label, e.g. pi-lab-7)")
        .makeOptionMandatory().env("FLEET_DEVICE_ID"),
    );
  for (const option of sshOptions()) command.addOption(option);
  for (const option of enrollOptions()) command.addOption(option);
  return command
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Every step says whether it changed anything; a second run changes nothing. New labels
rewrite only the config and restart the agent. A different config already on the device
is shown as a diff and replaced only when you confirm (or pass --yes). When sudo on the
target asks for a password, enroll asks for it once.

Examples:
  fleet device enroll --device-id pi-lab-7 --label site=lab \\
    --target ssh://pi@10.0.0.7 --nats-url nats://10.0.0.5:4222 \\
    --device-oidc-issuer https://id.example.com --device-key pi-lab-7.json
  sudo fleet device enroll --device-id gw-1 --label site=shop --nats-url nats://nats:4222`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      // Everything is checked before connecting anywhere.
      const ssh = planSsh(flags);
      const plan = await planEnroll(flags.deviceId, flags);
      await using target = await connectTarget(ssh);
      await runEnroll(target, plan, log);
    });
}

export function deviceCommand(): Command {
  const device = new Command("device").description("Set up and look after devices");
  device.addCommand(enrollCommand());
  device.addCommand(rotateKeyCommand());
  addLabelCommand(device);
  addCommandVerbs(device);
  return device;
}
