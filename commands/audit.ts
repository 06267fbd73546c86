import { Command, Option } from "@commander-js/extra-typings";
import { validateIdentifier } from "../core/mod.ts";
import { parseSince, SINCE_RULE } from "../core/since.ts";
import { printLine } from "../adapters/output.ts";
import { readAudit } from "../adapters/nats/mod.ts";
import { renderAudit } from "../cli/device_commands.ts";
import { connectFromFlags, integerParser, loggerFrom, UsageError, withNatsClient } from "./_cli.ts";

/** `fleet audit`: who asked which device what, and how it ended (DESIGN.md §9 "Audit"). */
export function auditCommand(): Command {
  return withNatsClient(
    new Command("audit")
      .description("Show who asked which device what, and how it ended (the audit trail)")
      .addOption(
        new Option("--device <id>", "only this device's records").env("FLEET_AUDIT_DEVICE"),
      )
      .addOption(
        new Option("--since <when>", `records since then: ${SINCE_RULE}`)
          .default("24h").env("FLEET_AUDIT_SINCE"),
      )
      .addOption(
        new Option("--limit <n>", "at most this many records")
          .argParser(integerParser("--limit", 1, 100_000)).default(1000).env("FLEET_AUDIT_LIMIT"),
      )
      .addOption(
        new Option("-o, --output <format>", "text for people, json for machines")
          .choices(["text", "json"] as const).default("text" as const).env("FLEET_OUTPUT"),
      )
      .addHelpText(
        "after",
        `
Every command a device received is recorded by that device, refused ones with the reason.
END is when the record was stored (the broker's clock); WHO is the requester's principal as
the broker enforced it. Requests the broker itself refused never reach a device: nats-server
logs those.

Examples:
  fleet audit
  fleet audit --device pi-lab-7 --since 10m
  fleet audit --since 2026-12-06T09:00:00Z -o json`,
      ),
  ).action(async (flags) => {
    if (flags.device !== undefined) validateIdentifier("device id", flags.device);
    const since = parseSince(flags.since, Date.now());
    if (since === undefined) {
      throw new UsageError(`Invalid --since ${JSON.stringify(flags.since)}: give ${SINCE_RULE}`);
    }
    const log = loggerFrom(flags);
    const nc = await connectFromFlags(flags, log);
    try {
      const records = await readAudit(nc, {
        sinceMs: since,
        limit: flags.limit,
        ...(flags.device === undefined ? {} : { deviceId: flags.device }),
        onSkip: (why) => log.warn(`Skipping an unreadable audit record: ${why}`),
      });
      printLine(
        flags.output === "json"
          ? JSON.stringify(
            records.map(({ record, storedAt }) => ({
              ...record,
              storedAt: new Date(storedAt).toISOString(),
            })),
            null,
            2,
          )
          : renderAudit(records),
      );
    } finally {
      await nc.close();
    }
  });
}
