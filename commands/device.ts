import { Command, Option } from "@commander-js/extra-typings";
import { askSecret } from "../adapters/host/terminal.ts";
import { LocalTarget, type Target, TargetError } from "../adapters/host/target.ts";
import { parseSshTarget, type SshAddress, SshTarget } from "../adapters/host/ssh_target.ts";
import { logFormatOption, loggerFrom, logLevelOption, UsageError } from "./_cli.ts";
import { enrollOptions, planEnroll, runEnroll } from "./_enroll.ts";

function enrollCommand(): Command {
  const command = new Command("enroll")
    .description(
      "Turn a Debian machine (this one, or one over SSH) into a fleet device: podman, the fleet-agent user and service, config, key; waits for its first heartbeat",
    )
    .addOption(
      new Option("--device-id <id>", "the device's id (a DNS label, e.g. pi-lab-7)")
        .makeOptionMandatory().env("FLEET_DEVICE_ID"),
    )
    .addOption(
      new Option("--target <ssh-url>", "ssh://user@host[:port]; default: this machine")
        .env("FLEET_SSH_TARGET"),
    )
    .addOption(
      new Option("--ssh-key <path>", "private key for --target (default: ssh's own choice)")
        .env("FLEET_SSH_KEY"),
    );
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
      const address = flags.target === undefined ? undefined : targetAddress(flags.target);
      const plan = await planEnroll(flags.deviceId, flags);
      await using target: Target = address
        ? await SshTarget.connect({
          address,
          ...(flags.sshKey ? { identityFile: flags.sshKey } : {}),
          prompt: askSecret,
        })
        : new LocalTarget(askSecret);
      await runEnroll(target, plan, log);
    });
}

/** A --target that is not an ssh:// URL is the user's input: exit code 2. */
function targetAddress(text: string): SshAddress {
  try {
    return parseSshTarget(text);
  } catch (error) {
    if (error instanceof TargetError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

export function deviceCommand(): Command {
  const device = new Command("device").description("Set up and look after devices");
  device.addCommand(enrollCommand());
  return device;
}
