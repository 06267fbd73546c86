/**
 * `fleet rollout`: how a deployment's workload changed and how its changes reach the devices
 * (DESIGN.md §9 "Revisions and rollout"). `history` lists the revisions the operator keeps;
 * `status` shows a progressive rollout batch by batch; `pause`, `resume`, `approve` and
 * `retry` store an action in the person's name for the operator to take, and wait until it
 * did; `undo` applies an earlier revision's workload again.
 */
import { Command, Option } from "@commander-js/extra-typings";
import type { NatsConnection } from "@nats-io/nats-core";
import { validateIdentifier } from "../core/ids.ts";
import { FleetError, parseWith } from "../core/errors.ts";
import { DeploymentSpec } from "../core/deployment.ts";
import type { DeploymentRef } from "../core/keys.ts";
import { undoTarget } from "../core/revisions.ts";
import { progressivePolicy } from "../core/rollout_policy.ts";
import type { RolloutActionRequest } from "../core/rollout_actions.ts";
import { systemClock } from "../adapters/clock.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { publishRolloutAction } from "../adapters/nats/mod.ts";
import { NatsRevisions } from "../operator/nats_revisions.ts";
import { renderRevisions } from "../cli/rollout_history.ts";
import { renderRolloutStatus, watchOutcome } from "../cli/rollout_status.ts";
import {
  deploymentOf,
  KubeRolloutTarget,
  NatsRolloutTarget,
  type RolloutSnapshot,
  type RolloutTarget,
} from "../cli/rollout_target.ts";
import { actionOutcome, waitForAction } from "../cli/rollout_wait.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { type FleetStore, NatsDeploymentStore } from "../cli/nats_store.ts";
import {
  connectFromFlags,
  ExitCode,
  integerParser,
  loggerFrom,
  namespaceOption,
  shutdownSignal,
  withNatsClient,
} from "./_cli.ts";
import { kubeClientFrom, type TargetFlags, withTarget } from "./_kube.ts";
import { principalOf } from "./_device_commands.ts";

/** `fleet rollout`. */
export function rolloutCommand(): Command {
  return new Command("rollout")
    .description("Show and steer how a deployment's changes reach the devices")
    .addCommand(historyCommand())
    .addCommand(statusCommand())
    .addCommand(actionCommand("pause"))
    .addCommand(actionCommand("resume"))
    .addCommand(actionCommand("approve"))
    .addCommand(actionCommand("retry"))
    .addCommand(undoCommand());
}

// Factories, not shared instances: commander options are mutable.
const outputOption = () =>
  new Option("-o, --output <format>", "text for people, json for machines")
    .choices(["text", "json"] as const).default("text" as const).env("FLEET_OUTPUT");
const deploymentNamespace = () => namespaceOption("the deployment's namespace").default("default");

/** The deployment named on the command line. */
function refOf(name: string, flags: { namespace: string }): DeploymentRef {
  validateIdentifier("namespace", flags.namespace);
  validateIdentifier("deployment name", name);
  return { namespace: flags.namespace, name };
}

/** What a rollout command opens: the deployment where --target says, NATS when it acts. */
interface Opened extends AsyncDisposable {
  target: RolloutTarget;
  /** Where actions and revisions are (both targets), when asked for. */
  nc: NatsConnection | undefined;
  /** Where `undo` applies the deployment again. */
  store: FleetStore;
}

async function open(flags: TargetFlags, log: Logger, withNats: boolean): Promise<Opened> {
  const nc = withNats || flags.target === "nats" ? await connectFromFlags(flags, log) : undefined;
  try {
    if (flags.target === "kube") {
      const kube = await kubeClientFrom(flags);
      return {
        target: new KubeRolloutTarget(kube, log, systemClock),
        nc,
        store: new KubeDeploymentStore(kube, log),
        async [Symbol.asyncDispose]() {
          kube.close();
          await nc?.close();
        },
      };
    }
  } catch (error) {
    await nc?.close();
    throw error;
  }
  return {
    target: new NatsRolloutTarget(nc!, log),
    nc,
    store: new NatsDeploymentStore(nc!, log),
    [Symbol.asyncDispose]: () => nc!.close(),
  };
}

/** The deployment `ref`, which must exist. */
async function existing(target: RolloutTarget, ref: DeploymentRef, where: string) {
  const snapshot = await target.read(ref);
  if (snapshot === undefined) {
    throw new FleetError(
      "failure",
      `deployment ${ref.namespace}/${ref.name} does not exist (${where}): check its name and ` +
        `namespace (-n) with fleet get deployments`,
    );
  }
  return snapshot;
}

const whereOf = (flags: TargetFlags) =>
  flags.target === "kube" ? "as a Kubernetes Deployment object" : "in the NATS deployments";

function historyCommand() {
  return withNatsClient(
    new Command("history")
      .description("List a deployment's revisions: each change of its workload, newest last")
      .argument("<deployment>", "the deployment")
      .addOption(deploymentNamespace())
      .addOption(outputOption())
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
    const ref = refOf(name, flags);
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

/** The status of `snapshot`'s rollout, as text or JSON. */
function shown(ref: DeploymentRef, snapshot: RolloutSnapshot, output: "text" | "json"): string {
  if (output === "json") {
    return JSON.stringify({ ...ref, rollout: snapshot.rollout ?? null }, null, 2);
  }
  const rollout = snapshot.spec?.rollout;
  const policy = rollout === undefined ? undefined : progressivePolicy(rollout);
  return renderRolloutStatus({
    ref,
    rollout: snapshot.rollout,
    ...(policy ? { approvals: policy.batches.map((b) => b.approval) } : {}),
    now: Date.now(),
  });
}

function statusCommand() {
  return withTarget(
    new Command("status")
      .description("Show where a deployment's progressive rollout stands, batch by batch")
      .argument("<deployment>", "the deployment")
      .addOption(deploymentNamespace())
      .addOption(
        new Option(
          "-w, --watch",
          "keep showing it as it changes, until it completes, rolls back or needs a person " +
            "(Ctrl-C to stop)",
        ).env("FLEET_WATCH"),
      )
      .addOption(outputOption())
      .addHelpText(
        "after",
        `
Each batch's devices: SELECTED still matched, UPDATED reporting the new revision, HEALTHY
running it healthy, FAILED reporting it failed, TIMED OUT not healthy within deviceTimeout,
OFFLINE unreachable (neither success nor failure; they get the revision when they return).
The last line says the step the rollout is at and why it waits.
With --watch the exit code is 0 once the rollout completes, 1 when it rolled back or is
Degraded (a person must act: fleet rollout retry, or undo).

Examples:
  fleet rollout status web
  fleet rollout status -n shop web --watch
  fleet rollout status web --target kube -o json`,
      ),
  ).action(async (name, flags) => {
    const ref = refOf(name, flags);
    const log = loggerFrom(flags);
    await using opened = await open(flags, log, false);
    const first = await existing(opened.target, ref, whereOf(flags));
    const progressive = first.spec?.rollout.strategy === "Progressive";
    if (!flags.watch || (first.rollout === undefined && !progressive)) {
      printLine(shown(ref, first, flags.output));
      return;
    }
    for await (const snapshot of opened.target.watch(ref, shutdownSignal(log))) {
      if (snapshot === undefined) {
        throw new FleetError("failure", `deployment ${ref.namespace}/${ref.name} was deleted`);
      }
      printLine(`--- ${new Date().toISOString()}\n${shown(ref, snapshot, flags.output)}`);
      const outcome = snapshot.rollout && watchOutcome(snapshot.rollout.phase);
      if (outcome !== undefined) {
        if (outcome === "failed") Deno.exitCode = ExitCode.failure;
        return;
      }
    }
  });
}

const ACTION_HELP = {
  pause: [
    "Pause a deployment's progressive rollout before its next batch",
    "The current batch's devices finish; no further batch starts until fleet rollout resume.",
  ],
  resume: ["Resume a paused progressive rollout", "The next batch starts when it is due."],
  approve: [
    "Approve a batch whose approval is Manual, so that it starts",
    "By default the next Manual batch not yet started; --batch names another (1 is the first).",
  ],
  retry: [
    "Re-run the failed devices of the current batch of a Degraded rollout",
    "Only the devices that failed or timed out get the revision again; failures reported " +
    "before the retry no longer count.",
  ],
} as const;

function actionCommand(verb: RolloutActionRequest["verb"]) {
  const [description, detail] = ACTION_HELP[verb];
  const command = new Command(verb)
    .description(description)
    .argument("<deployment>", "the deployment")
    .addOption(deploymentNamespace())
    .addOption(
      new Option("--timeout <seconds>", "how long to wait for the operator to take the action")
        .argParser(integerParser("--timeout", 1, 3600)).default(30).env(
          "FLEET_ROLLOUT_TIMEOUT",
        ),
    );
  if (verb === "approve") {
    command.addOption(
      new Option("--batch <number>", "the batch to approve (1 is the first)")
        .argParser(integerParser("--batch", 1)).env("FLEET_ROLLOUT_BATCH"),
    );
  }
  return withTarget(command)
    .addHelpText(
      "after",
      `
${detail}
The action is stored in your name (who did what is kept with the rollout's record); the command
then waits until the operator took it and prints where the rollout stands, or why the operator
refused it (exit 1). If the operator does not take it within --timeout, the action stays
stored and is applied when the operator runs.

Examples:
  fleet rollout ${verb} web${
        verb === "approve" ? "\n  fleet rollout approve -n shop web --batch 2" : ""
      }
  fleet rollout ${verb} web --target kube --timeout 60`,
    )
    .action(async (name, flags) => {
      const ref = refOf(name, flags);
      const batch = (flags as { batch?: number }).batch;
      const log = loggerFrom(flags);
      await using opened = await open(flags, log, true);
      const snapshot = await existing(opened.target, ref, whereOf(flags));
      if (snapshot.rollout === undefined) {
        throw new FleetError(
          "failure",
          `deployment ${ref.namespace}/${ref.name} has no progressive rollout to ${verb}: ` +
            (snapshot.spec?.rollout.strategy === "Progressive"
              ? `the operator has not started it yet (is it running?)`
              : `it rolls out Immediately (spec.rollout.strategy Progressive has batches to ${verb})`),
        );
      }
      const nc = opened.nc!;
      const seq = await publishRolloutAction(nc, ref, principalOf(nc), {
        verb,
        ...(batch === undefined ? {} : { batch }),
      });
      const action = { ref, verb, seq, before: snapshot.rollout.lastAction };
      const rollout = await waitForAction(opened.target, action, {
        timeoutMs: flags.timeout * 1000,
        clock: systemClock,
      });
      printLine(actionOutcome(action, rollout));
    });
}

function undoCommand() {
  return withTarget(
    new Command("undo")
      .description("Go back to an earlier revision's workload (by default the one before)")
      .argument("<deployment>", "the deployment")
      .addOption(deploymentNamespace())
      .addOption(
        new Option("--to-revision <number>", "the revision to go back to (fleet rollout history)")
          .argParser(integerParser("--to-revision", 1)).env("FLEET_ROLLOUT_TO_REVISION"),
      )
      .addHelpText(
        "after",
        `
The deployment is applied again with that revision's workload (its containers; selector and
rollout policy stay), where --target says, as fleet apply would. The operator records it as a
new revision, and a progressive rollout sends it through the batches like any change (devices
that already run it count as done).

Examples:
  fleet rollout undo web
  fleet rollout undo -n shop web --to-revision 3`,
      ),
  ).action(async (name, flags) => {
    const ref = refOf(name, flags);
    const log = loggerFrom(flags);
    await using opened = await open(flags, log, true);
    const snapshot = await existing(opened.target, ref, whereOf(flags));
    const revisions = await new NatsRevisions(opened.nc!, log).list(ref);
    const newest = revisions.at(-1)?.number ?? 0;
    const target = undoTarget(revisions, newest, flags.toRevision);
    if (snapshot.spec === undefined) {
      throw new FleetError(
        "failure",
        `deployment ${ref.namespace}/${ref.name} holds a spec the operator refuses: fix it ` +
          `(fleet get deployments says why) before going back to revision ${target.number}`,
      );
    }
    // Kept as the operator stored it; checked again as any spec a person applies.
    const spec = parseWith(
      DeploymentSpec,
      { ...snapshot.spec, score: target.score },
      `workload of revision ${target.number}`,
    );
    const result = await opened.store.apply(deploymentOf(snapshot, spec));
    printLine(
      `deployment ${ref.namespace}/${ref.name} rolled back to the workload of revision ` +
        `${target.number} (${target.change}): generation ${result.generation}, which the ` +
        `operator records as revision ${newest + 1}`,
    );
  });
}
