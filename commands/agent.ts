import { Command, Option } from "@commander-js/extra-typings";
import { Agent, type AgentConfig, agentConfigFile, PodmanRuntime } from "../agent/mod.ts";
import { ConfigFileError } from "../adapters/toml_config.ts";
import type { Logger } from "../adapters/logger.ts";
import { sleep } from "../adapters/timers.ts";
import { systemClock } from "../adapters/clock.ts";
import { credentialsFromConfig } from "../agent/credentials.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { logFormatOption, loggerFrom, logLevelOption, shutdownSignal } from "./_cli.ts";

/** How long a service with an unusable config stays up to show why (see holdBeforeExit). */
const CONFIG_ERROR_HOLD_MS = 30_000;

/**
 * Under systemd (which sets INVOCATION_ID), `systemctl status` shows only the running
 * attempt's log: between a crash and the restart it showed nothing of the reason. So the agent
 * says what is wrong and stays up a while before exiting, which also spaces the restarts out.
 */
async function holdBeforeExit(error: ConfigFileError, log: Logger): Promise<void> {
  if (Deno.env.get("INVOCATION_ID") === undefined) return;
  log.error(error.message);
  log.error(
    `The agent cannot start until ${error.path} is fixed; it exits in ${
      CONFIG_ERROR_HOLD_MS / 1000
    } s and systemd starts it again (running containers are not affected)`,
  );
  await sleep(CONFIG_ERROR_HOLD_MS, shutdownSignal(log));
}

/**
 * The places of the config this process may not write to: under its systemd unit, the agent's
 * Deno permissions allow writing to its state directory and its podman socket only. Found at
 * start and reported as a config error, rather than as a denial in the middle of a reconcile.
 */
function deniedWrites(config: AgentConfig, path: string): ConfigFileError | undefined {
  const denied = [
    ["state_dir", config.state_dir],
    ["podman.socket", config.podman.socket],
  ].filter(([, file]) =>
    Deno.permissions.querySync({ name: "write", path: file! }).state !== "granted"
  );
  if (denied.length === 0) return undefined;
  return agentConfigFile.error(
    path,
    denied.map(([field, file]) => `the agent may not write to ${field} ${file}`).join("; ") +
      ` (its service's Deno permissions allow /var/lib/fleet-agent and the podman socket ` +
      `under /run/user only)`,
  );
}

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
      const config = await agentConfigFile.load(flags.config).catch(
        async (error: unknown): Promise<never> => {
          if (error instanceof ConfigFileError) await holdBeforeExit(error, loggerFrom(flags));
          throw error;
        },
      );
      const denied = deniedWrites(config, flags.config);
      if (denied !== undefined) {
        await holdBeforeExit(denied, loggerFrom(flags));
        throw denied;
      }
      const log = loggerFrom(flags).with({ device: config.device_id });
      const signal = shutdownSignal(log);
      using podman = new PodmanClient({ socketPath: config.podman.socket });
      await new Agent({
        config,
        credentials: await credentialsFromConfig(config.nats.credentials, {
          deviceId: config.device_id,
          configPath: flags.config,
          log,
          clock: systemClock,
        }),
        runtime: new PodmanRuntime(podman),
        log,
        version,
        runtimeDescription: `podman at ${config.podman.socket}`,
        clock: systemClock,
        configPath: flags.config,
      }).run(signal);
    });
  return agent;
}
