/**
 * `fleet rollout`: how a deployment's workload changed and how its changes reach the devices
 * (DESIGN.md §9 "Revisions and rollout"). `history` lists the revisions the operator keeps.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { validateIdentifier } from "../core/ids.ts";
import { printLine } from "../adapters/output.ts";
import { NatsRevisions } from "../operator/nats_revisions.ts";
import { renderRevisions } from "../cli/rollout_history.ts";
import { connectFromFlags, loggerFrom, namespaceOption, withNatsClient } from "./_cli.ts";

/** `fleet rollout`. */
export function rolloutCommand(): Command {
  return new Command("rollout")
    .description("Show how a deployment's workload changed")
    .addCommand(historyCommand());
}

function historyCommand() {
  return withNatsClient(
    new Command("history")
      .description("List a deployment's revisions: each change of its workload, newest last")
      .argument("<deployment>", "the deployment")
      .addOption(namespaceOption("the deployment's namespace").default("default"))
      .addOption(
        new Option("-o, --output <format>", "text for people, json for machines")
          .choices(["text", "json"] as const).default("text" as const).env("FLEET_OUTPUT"),
      )
      .addHelpText(
        "after",
        `
The operator records a revision each time the deployment's workload (its containers) changes
and keeps the last ones (fleet operator run --revision-history, 10 by default). Going back to
an earlier workload makes a new revision with a new number. Times are the control plane's.

Examples:
  fleet rollout history web
  fleet rollout history -n shop web -o json`,
      ),
  ).action(async (name, flags) => {
    validateIdentifier("namespace", flags.namespace);
    validateIdentifier("deployment name", name);
    const ref = { namespace: flags.namespace, name };
    const log = loggerFrom(flags);
    const nc = await connectFromFlags(flags, log);
    try {
      const revisions = await new NatsRevisions(nc, log).list(ref);
      printLine(
        flags.output === "json"
          ? JSON.stringify(revisions, null, 2)
          : renderRevisions(ref, revisions),
      );
    } finally {
      await nc.close();
    }
  });
}
