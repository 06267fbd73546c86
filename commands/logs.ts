/**
 * `fleet logs`: a deployment's container logs (or the agent's own journal) from one device, or
 * interleaved from every device a label selector picks, over a session with each device
 * (DESIGN.md §9 "Sessions"). Ctrl-C cancels the sessions and waits for their ends.
 */
import { Command, type CommandUnknownOpts, Option } from "@commander-js/extra-typings";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  matchesSelector,
  MIN_CREDIT,
  newSessionId,
  parseSelector,
  parseSince,
  SINCE_RULE,
  validateIdentifier,
} from "../core/mod.ts";
import { FleetError } from "../core/errors.ts";
import { systemClock } from "../adapters/clock.ts";
import type { Logger } from "../adapters/logger.ts";
import { SessionClient } from "../adapters/nats/session_client.ts";
import { writeOut } from "../adapters/output.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { endMessage, prefixLines } from "../cli/logs.ts";
import { askDevice, deploymentTarget, principalOf } from "./_device_commands.ts";
import {
  connectFromFlags,
  integerParser,
  loggerFrom,
  namespaceOption,
  UsageError,
  withNatsClient,
} from "./_cli.ts";

/** Bytes each device may send ahead of what was written out. */
const WINDOW = 16 * MIN_CREDIT;

/** What to read on each device. */
interface LogsAsk {
  namespace: string;
  deployment?: string;
  service?: string;
  agent: boolean;
  tail?: number;
  since?: string;
  follow: boolean;
  timestamps: boolean;
}

/** `fleet logs`. */
export function logsCommand(): CommandUnknownOpts {
  return withNatsClient(
    new Command("logs")
      .description(
        "Show a deployment's container logs on a device, or on every device a selector picks",
      )
      .argument("[device]", "the device (none with --selector)")
      .argument("[deployment]", "DEPLOYMENT or DEPLOYMENT/SERVICE (none with --agent)")
      .addOption(namespaceOption("the deployment's namespace").default("default"))
      .addOption(
        new Option("-l, --selector <selector>", "every device this label selector picks")
          .env("FLEET_LOGS_SELECTOR"),
      )
      .addOption(
        new Option("--tail <lines>", "only the last lines of each container")
          .argParser(integerParser("--tail", 0)).env("FLEET_LOGS_TAIL"),
      )
      .addOption(
        new Option("--since <when>", `only what was written since then: ${SINCE_RULE}`)
          .env("FLEET_LOGS_SINCE"),
      )
      .addOption(
        new Option("-f, --follow", "keep printing new lines until Ctrl-C").env("FLEET_LOGS_FOLLOW"),
      )
      .addOption(
        new Option("--timestamps", "start each line with its time (the device's clock)")
          .env("FLEET_LOGS_TIMESTAMPS"),
      )
      .addOption(
        new Option("--agent", "the agent's own journal instead of a deployment's containers")
          .env("FLEET_LOGS_AGENT"),
      )
      .addOption(
        new Option("--timeout <seconds>", "how long to wait for each device to accept")
          .argParser(integerParser("--timeout", 1, 3600)).default(10).env("FLEET_LOGS_TIMEOUT"),
      )
      .addHelpText(
        "after",
        `
Needs the maintainer role. A deployment with several services prints each line after
[SERVICE]; several devices, each line after the device id. Lines longer than 16 KiB are cut
and marked. An age in --since is measured on each device's clock.

Examples:
  fleet logs pi-lab-7 web
  fleet logs pi-lab-7 -n shop web/db --tail 100 --follow
  fleet logs -l site=lab -n shop web --follow
  fleet logs pi-lab-7 --agent --since 1h`,
      ),
  ).action(async (first, second, flags) => {
    const bySelector = flags.selector !== undefined;
    const deviceId = bySelector ? undefined : first;
    const target = bySelector ? first : second;
    if (bySelector && second !== undefined) {
      throw new UsageError(
        `With --selector give only DEPLOYMENT[/SERVICE], not a device: got ${first} ${second}`,
      );
    }
    if (deviceId === undefined && !bySelector) {
      throw new UsageError("Give a device, or --selector to pick devices by label");
    }
    if (deviceId !== undefined) validateIdentifier("device id", deviceId);
    if (flags.since !== undefined && parseSince(flags.since, Date.now()) === undefined) {
      throw new UsageError(`Invalid --since ${JSON.stringify(flags.since)}: give ${SINCE_RULE}`);
    }
    const ask: LogsAsk = {
      namespace: flags.namespace,
      agent: flags.agent === true,
      follow: flags.follow === true,
      timestamps: flags.timestamps === true,
      ...(flags.tail === undefined ? {} : { tail: flags.tail }),
      ...(flags.since === undefined ? {} : { since: flags.since }),
      ...deploymentOf(target, flags.agent === true),
    };
    validateIdentifier("namespace", ask.namespace);
    const log = loggerFrom(flags);
    const nc = await connectFromFlags(flags, log);
    try {
      const devices = deviceId !== undefined
        ? [deviceId]
        : await devicesBySelector(nc, log, flags.selector!);
      await followAll(nc, log, devices, ask, flags.timeout * 1000, bySelector);
    } finally {
      await nc.close();
    }
  });
}

/** The deployment and service of `target`, checked; none for the agent's journal. */
function deploymentOf(target: string | undefined, agent: boolean) {
  if (agent) {
    if (target !== undefined) {
      throw new UsageError(`--agent reads the agent's journal: give no deployment (got ${target})`);
    }
    return {};
  }
  if (target === undefined) throw new UsageError("Give DEPLOYMENT[/SERVICE], or --agent");
  return deploymentTarget(target);
}

/** The devices whose labels (the control plane's) `selector` matches, by id. */
async function devicesBySelector(
  nc: NatsConnection,
  log: Logger,
  selector: string,
): Promise<string[]> {
  const parsed = parseSelector([selector]);
  const devices = (await new NatsDeploymentStore(nc, log).devices())
    .filter((d) => matchesSelector(parsed, d.labels))
    .map((d) => d.info.deviceId)
    .sort();
  if (devices.length === 0) {
    throw new FleetError("failure", `no device matches the selector ${JSON.stringify(selector)}`);
  }
  return devices;
}

/**
 * Opens a session with each device and prints what they send until every one ended. Ctrl-C
 * cancels them all. One device that cannot be reached fails the command when it is the only one;
 * among several it is reported and the others go on.
 */
async function followAll(
  nc: NatsConnection,
  log: Logger,
  devices: string[],
  ask: LogsAsk,
  timeoutMs: number,
  prefixed: boolean,
): Promise<void> {
  const principal = principalOf(nc);
  const clients: SessionClient[] = [];
  let interrupted = false;
  // Ctrl-C asks each device to end; one that does not answer soon (or a second Ctrl-C) is left.
  const onInterrupt = () => {
    if (interrupted) return clients.forEach((c) => c.close());
    interrupted = true;
    clients.forEach((c) => c.cancel());
    systemClock.timer(3_000, () => clients.forEach((c) => c.close()), { unref: true });
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const failures: string[] = [];
  try {
    await Promise.all(devices.map(async (deviceId) => {
      const sessionId = newSessionId();
      const client = new SessionClient(nc, {
        deviceId,
        principal,
        sessionId,
        window: WINDOW,
        clock: systemClock,
      });
      clients.push(client);
      const events = client.events();
      try {
        await askDevice(nc, deviceId, "logs", {
          requestId: crypto.randomUUID(),
          sessionId,
          credit: WINDOW,
          ...ask,
        }, timeoutMs);
      } catch (error) {
        client.close();
        if (devices.length === 1) throw error;
        failures.push(deviceId);
        log.error((error as Error).message);
        return;
      }
      const prefix = prefixed ? `${deviceId} | ` : "";
      for await (const event of events) {
        if ("data" in event) {
          await writeOut(prefixLines(event.data, prefix));
          client.consumed(event.data.length);
          continue;
        }
        if ("notice" in event) continue; // logs sessions send none
        const message = endMessage(deviceId, event.end);
        if (message !== undefined) {
          if (devices.length === 1) throw new FleetError("failure", message);
          failures.push(deviceId);
          log.error(message);
        }
      }
    }));
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
  if (failures.length > 0) {
    throw new FleetError(
      "failure",
      `the logs of ${failures.length} of ${devices.length} device(s) ended early: ${
        failures.join(", ")
      }`,
    );
  }
}
