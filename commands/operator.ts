import { Command, Option } from "@commander-js/extra-typings";
import { NatsDeploymentSource, Operator } from "../operator/mod.ts";
import { connectNats } from "../adapters/nats/mod.ts";
import {
  credentialsFrom,
  logFormatOption,
  loggerFrom,
  logLevelOption,
  natsPasswordOption,
  natsServers,
  natsUrlOption,
  natsUserOption,
  shutdownSignal,
  UsageError,
} from "./_cli.ts";

function positiveInt(name: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`${name} must be a positive integer, got "${text}"`);
    }
    return n;
  };
}

export function operatorCommand(): Command {
  const operator = new Command("operator").description(
    "The control plane that targets devices and aggregates status",
  );
  operator.command("run")
    .description("Run the operator")
    .addOption(
      new Option("--source <source>", "where Deployments live: nats (embedded, no Kubernetes)")
        .choices(["nats"] as const).default("nats" as const).env("FLEET_SOURCE"),
    )
    .addOption(natsUrlOption())
    .addOption(natsUserOption())
    .addOption(natsPasswordOption())
    .addOption(
      new Option("--replicas <n>", "bucket replicas (3 on a NATS cluster)")
        .argParser(positiveInt("--replicas")).default(1).env("FLEET_REPLICAS"),
    )
    .addOption(
      new Option(
        "--stale-after <seconds>",
        "a device with no heartbeat for this long is unreachable",
      )
        .argParser(positiveInt("--stale-after")).default(90).env("FLEET_STALE_AFTER"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example:
  fleet operator run --nats-url nats://10.0.0.5:4222`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags).with({ component: "operator" });
      const signal = shutdownSignal(log);
      const nc = await connectNats({
        servers: natsServers(flags),
        credentials: credentialsFrom(flags),
        name: "fleet-operator",
        logger: log,
        signal,
      });
      try {
        await new Operator({
          nc,
          source: new NatsDeploymentSource(nc, log, flags.replicas),
          log,
          replicas: flags.replicas,
          staleAfterMs: flags.staleAfter * 1000,
        }).run(signal);
      } finally {
        await nc.close();
      }
    });
  return operator;
}
