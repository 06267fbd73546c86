/**
 * `fleet device ping|diag|restart|reconcile <deviceId>`: one request to the device's agent over
 * NATS (DESIGN.md §9), in the caller's own name: the principal the broker lets this connection
 * use. A device with no agent listening is reported offline at once, with its last heartbeat;
 * one that does not answer in time, as a timeout naming what was asked.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { type NatsConnection, RequestError, TimeoutError } from "@nats-io/nats-core";
import type * as z from "zod";
import {
  Buckets,
  CommandReply,
  commandSubject,
  type CommandVerb,
  keys,
  parseJsonWith,
  ResultOf,
  validateIdentifier,
} from "../core/mod.ts";
import { FleetError } from "../core/errors.ts";
import { printLine } from "../adapters/output.ts";
import { deniedByBroker, openBucket } from "../adapters/nats/mod.ts";
import {
  offlineMessage,
  renderDiag,
  renderPing,
  renderReconcile,
  renderRestart,
  timeoutMessage,
} from "../cli/device_commands.ts";
import {
  connectFromFlags,
  integerParser,
  loggerFrom,
  namespaceOption,
  type NatsConnectionFlags,
  UsageError,
  withNatsClient,
} from "./_cli.ts";

const OutputFormats = ["text", "json"] as const;
const outputOption = () =>
  new Option("-o, --output <format>", "text for people, json for machines")
    .choices(OutputFormats).default("text" as const).env("FLEET_OUTPUT");
const timeoutOption = () =>
  new Option("--timeout <seconds>", "how long to wait for the device's answer")
    .argParser(integerParser("--timeout", 1, 3600)).default(10).env("FLEET_COMMAND_TIMEOUT");

/**
 * The principal this connection asks in: its inbox is `_INBOX_p_<principal>` (DESIGN.md §9).
 * A development connection (user and password, no callout) has none: "anonymous".
 */
export function principalOf(nc: NatsConnection): string {
  // The client keeps its options; its interface does not show them.
  const prefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
  return prefix?.startsWith("_INBOX_p_") ? prefix.slice("_INBOX_p_".length) : "anonymous";
}

/** The broker's time of the device's last heartbeat, or undefined when it never sent one. */
async function lastHeartbeat(nc: NatsConnection, deviceId: string): Promise<number | undefined> {
  const entry = await (await openBucket(nc, Buckets.deviceHeartbeat)).get(keys.heartbeat(deviceId));
  return entry?.operation === "PUT" ? entry.created.getTime() : undefined;
}

/**
 * Sends `verb` with `request` to `deviceId` and returns its result and the round trip.
 *
 * @throws {FleetError} offline, timeout, not allowed, or the device's refusal, each one line.
 */
/**
 * The deployment and service of `target` (`DEPLOYMENT` or `DEPLOYMENT/SERVICE`), checked.
 * @param where said after the shape in the error, e.g. `before --, or --host`
 * @throws {UsageError} naming the value and the shape
 */
export function deploymentTarget(
  target: string,
  where = "",
): { deployment: string; service?: string } {
  const [deployment, service, extra] = target.split("/");
  if (extra !== undefined || !deployment) {
    throw new UsageError(
      `Invalid deployment ${JSON.stringify(target)}: give DEPLOYMENT or DEPLOYMENT/SERVICE` +
        (where === "" ? "" : ` ${where}`),
    );
  }
  validateIdentifier("deployment name", deployment);
  if (service !== undefined) validateIdentifier("service name", service);
  return { deployment, ...(service === undefined ? {} : { service }) };
}

export async function askDevice<V extends CommandVerb>(
  nc: NatsConnection,
  deviceId: string,
  verb: V,
  request: Record<string, unknown>,
  timeoutMs: number,
): Promise<{ result: z.infer<typeof ResultOf[V]>; roundTripMs: number }> {
  const principal = principalOf(nc);
  const started = performance.now();
  let data: Uint8Array;
  try {
    const msg = await nc.request(
      commandSubject(deviceId, verb, principal),
      JSON.stringify(request),
      { timeout: timeoutMs },
    );
    data = msg.data;
  } catch (error) {
    if (error instanceof RequestError && error.isNoResponders()) {
      throw new FleetError(
        "failure",
        offlineMessage(deviceId, await lastHeartbeat(nc, deviceId), Date.now()),
      );
    }
    if (deniedByBroker(error)) {
      throw new FleetError(
        "failure",
        `your role does not allow ${verb} on devices: the broker refused device-commands.${deviceId}.${verb} for ` +
          `principal ${principal} (ask an admin for a role that allows ${verb})`,
      );
    }
    if (error instanceof TimeoutError || (error as Error).name === "TimeoutError") {
      throw new FleetError("failure", timeoutMessage(deviceId, verb, timeoutMs));
    }
    throw error;
  }
  const roundTripMs = performance.now() - started;
  const reply = parseJsonWith(CommandReply, data, `reply of device ${deviceId} to ${verb}`);
  if (!reply.ok) {
    throw new FleetError("failure", `device ${deviceId} ${reply.outcome} ${verb}: ${reply.error}`);
  }
  const result = parseJsonWith(
    ResultOf[verb],
    JSON.stringify(reply.result),
    `result of ${verb} from device ${deviceId}`,
  ) as z.infer<typeof ResultOf[V]>;
  return { result, roundTripMs };
}

type VerbFlags = NatsConnectionFlags & {
  timeout: number;
  output: typeof OutputFormats[number];
  logLevel: "debug" | "info" | "warn" | "error";
  logFormat: "text" | "json";
};

/** Connects, asks, prints the reply as JSON or as `render` says. */
async function run<V extends CommandVerb>(
  deviceId: string,
  verb: V,
  request: Record<string, unknown>,
  flags: VerbFlags,
  render: (result: z.infer<typeof ResultOf[V]>, roundTripMs: number) => string,
): Promise<void> {
  validateIdentifier("device id", deviceId);
  const log = loggerFrom(flags);
  const nc = await connectFromFlags(flags, log);
  try {
    const { result, roundTripMs } = await askDevice(
      nc,
      deviceId,
      verb,
      request,
      flags.timeout * 1000,
    );
    printLine(
      flags.output === "json"
        ? JSON.stringify({ deviceId, verb, roundTripMs: Math.round(roundTripMs), result }, null, 2)
        : render(result, roundTripMs),
    );
  } finally {
    await nc.close();
  }
}

function verbCommand(name: CommandVerb, description: string, help: string) {
  return withNatsClient(
    new Command(name)
      .description(description)
      .argument("<deviceId>", "the device to ask")
      .addOption(outputOption())
      .addOption(timeoutOption())
      .addHelpText("after", help),
  );
}

const requestId = () => crypto.randomUUID();

/** Adds ping, diag, restart and reconcile to `fleet device`. */
export function addCommandVerbs(device: Command): void {
  device.addCommand(
    verbCommand(
      "ping",
      "Check that a device's agent answers: its version, uptime, clock and round trip",
      `
Any role may ping. An offline device is reported at once, with its last heartbeat.

Examples:
  fleet device ping pi-lab-7
  fleet device ping pi-lab-7 -o json`,
    ).action((deviceId, flags) =>
      run(
        deviceId,
        "ping",
        { requestId: requestId() },
        flags,
        (r, rtt) => renderPing(deviceId, r, rtt, Date.now()),
      )
    ),
  );
  device.addCommand(
    verbCommand(
      "diag",
      "Show what a device's agent sees: config (no secrets), podman, desired state, deployments, recent warnings",
      `
Needs the maintainer role. Times under "Recent warnings" are the device's own clock.

Examples:
  fleet device diag pi-lab-7`,
    ).action((deviceId, flags) =>
      run(deviceId, "diag", { requestId: requestId() }, flags, (r) => renderDiag(deviceId, r))
    ),
  );
  device.addCommand(
    verbCommand(
      "restart",
      "Restart a deployment's containers on a device, or one service's",
      `
Needs the maintainer role. The containers are restarted in place (podman restart), not
recreated. Retrying with the same --request-id restarts nothing again.

Examples:
  fleet device restart pi-lab-7 web
  fleet device restart pi-lab-7 -n shop web/db`,
    )
      .argument("<deployment>", "DEPLOYMENT or DEPLOYMENT/SERVICE")
      .addOption(namespaceOption("the deployment's namespace").default("default"))
      .addOption(
        new Option("--request-id <id>", "the request's id; the same id restarts once")
          .env("FLEET_REQUEST_ID"),
      )
      .action((deviceId, target, flags) => {
        validateIdentifier("namespace", flags.namespace);
        return run(
          deviceId,
          "restart",
          {
            requestId: flags.requestId ?? requestId(),
            namespace: flags.namespace,
            ...deploymentTarget(target),
          },
          flags,
          (r) => renderRestart(deviceId, r),
        );
      }),
  );
  device.addCommand(
    verbCommand(
      "reconcile",
      "Make a device's agent compare its containers with its desired state now",
      `
Needs the maintainer role. Answers when a pass that started after the request has ended.

Examples:
  fleet device reconcile pi-lab-7`,
    ).action((deviceId, flags) =>
      run(
        deviceId,
        "reconcile",
        { requestId: requestId() },
        flags,
        (r) => renderReconcile(deviceId, r),
      )
    ),
  );
}
