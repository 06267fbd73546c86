import { Command, Option } from "@commander-js/extra-typings";
import { DemoInterrupted, DemoStory } from "../sandbox/demo.ts";
import { narrate } from "../adapters/output.ts";
import { renderTable } from "../cli/table.ts";
import { ExitCode, logFormatOption, loggerFrom, logLevelOption, shutdownSignal } from "./_cli.ts";

export function demoCommand(version: string): Command {
  return new Command("demo")
    .description(
      "Run a whole fleet on this machine: nats-server, the operator and three agents, then deploy to two of them",
    )
    .addOption(
      new Option(
        "--auto",
        "run the full story unattended (update, delete), print timings, exit 0 only if every step held",
      ).env("FLEET_DEMO_AUTO"),
    )
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Needs nats-server and podman on this machine (the README's setup line installs them).
Everything it starts is stopped and removed on exit, containers included, however it is
stopped: Ctrl-C, SIGTERM or a closed terminal (SIGHUP). Interactive, that is its normal end
(exit 0); with --auto, a stop before the last step exits 1.

Examples:
  fleet demo          interactive: stops at Ctrl-C
  fleet demo --auto   unattended, for CI`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      // Listened to from the start: a Ctrl-C while the fleet comes up must clean up too.
      const stop = shutdownSignal(log);
      const story = new DemoStory(log, version, stop);
      try {
        await story.up();
        if (flags.auto) {
          await story.updateAndDelete();
        } else if (!stop.aborted) {
          narrate(`
The fleet is running. In another terminal, try:
  deno task fleet get devices --nats-url ${story.fleet?.nats.url}
  deno task fleet get deployments --watch --nats-url ${story.fleet?.nats.url}
  deno task fleet apply deployment --name hello -n demo --image localhost/fleet-test:v2 --selector site=lab --nats-url ${story.fleet?.nats.url}
Press Ctrl-C to stop and clean up.`);
          await new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }));
        }
      } catch (error) {
        // The failed step printed why. Stopping the interactive demo is how it ends.
        if (!(error instanceof DemoInterrupted) || flags.auto) Deno.exitCode = ExitCode.failure;
      } finally {
        await story.down();
      }
      narrate("\nSummary:");
      narrate(renderTable(
        ["STEP", "RESULT", "SECONDS"],
        story.results.map((r) => [r.step, r.ok ? "ok" : "FAILED", (r.ms / 1000).toFixed(2)]),
      ));
    });
}
