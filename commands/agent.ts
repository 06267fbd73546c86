import { Command, Option } from "@commander-js/extra-typings";
import { Agent, loadAgentConfig, PodmanRuntime } from "../agent/mod.ts";
import { credentialsFromConfig } from "../agent/credentials.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { logFormatOption, loggerFrom, logLevelOption, shutdownSignal } from "./_cli.ts";

export function agentCommand(version: string): Command {
  const agent = new Command("agent").description("The device agent that runs on every device");
  agent.command("run")
    .description(
      "Run the agent: keep this device's containers equal to its desired state and report how it goes",
    )
    .addOption(
      new Option("-c, --config <path>", "agent config file (TOML)")
        .default("/etc/fleet-agent/config.toml").env("FLEET_AGENT_CONFIG"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example:
  fleet agent run --config /etc/fleet-agent/config.toml

The agent keeps running containers untouched while NATS is unreachable and converges
when it returns. Logs go to stderr (journald under systemd).`,
    )
    .action(async (flags) => {
      const config = await loadAgentConfig(flags.config);
      const log = loggerFrom(flags).with({ device: config.device_id });
      const signal = shutdownSignal(log);
      using podman = new PodmanClient({ socketPath: config.podman.socket });
      await new Agent({
        config,
        credentials: await credentialsFromConfig(config.nats.credentials, {
          deviceId: config.device_id,
          configPath: flags.config,
          log,
        }),
        runtime: new PodmanRuntime(podman),
        log,
        version,
        runtimeDescription: `podman at ${config.podman.socket}`,
      }).run(signal);
    });
  return agent;
}
