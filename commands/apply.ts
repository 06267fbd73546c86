import { Command, Option } from "@commander-js/extra-typings";
import YAML from "yaml";
import {
  buildDeployment,
  DEFAULT_NAMESPACE,
  type Deployment,
  parseDeploymentManifest,
  RestartPolicies,
  WireFormatError,
} from "../core/mod.ts";
import { errorMessage, ExitCode, exitCodeOf, FleetError } from "../core/errors.ts";
import type { Logger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { type ManifestDocument, readManifests } from "../cli/manifests.ts";
import { warnOfPortConflicts } from "../cli/port_warnings.ts";
import { checkWorkloadPolicy, warnOfRolloutPolicy } from "../cli/policy_warnings.ts";
import {
  type LogFlags,
  loggerFrom,
  namespaceOption,
  type NatsConnectionFlags,
  UsageError,
} from "./_cli.ts";
import { reportError } from "./_report.ts";
import { openStore, withTarget } from "./_kube.ts";

const collect = (value: string, previous: string[]) => [...previous, value];

const filenameOption = () =>
  new Option(
    "-f, --filename <file>",
    "YAML or JSON file of Deployments ('---' between them), a directory of such files, or '-' for stdin; repeatable",
  ).argParser(collect).default([] as string[]).env("FLEET_DEPLOYMENT_FILE");
const printOption = () =>
  new Option("--print", "print the Deployments as YAML instead of applying them")
    .env("FLEET_APPLY_PRINT");
const forceConflictsOption = () =>
  new Option("--force-conflicts", "kube: take over fields another manager (e.g. kubectl) owns")
    .env("FLEET_APPLY_FORCE_CONFLICTS");

/** What every form of apply takes: where Deployments go, and how to report. */
type ApplyFlags = NatsConnectionFlags & LogFlags & {
  target: "nats" | "kube";
  kubeconfig?: string | undefined;
  forceConflicts?: boolean | undefined;
  print?: boolean | undefined;
};

/** One object to apply, in the order given: a Deployment, or why it is refused. */
interface Item {
  /** `web.yaml document 2`; none for a deployment built from flags. */
  origin?: string;
  outcome: { deployment: Deployment } | { refused: FleetError };
}

/** `deployment retail/web ` when the document is a named Deployment, for its refusal. */
function nameIn(value: unknown): string {
  const object = typeof value === "object" && value !== null
    ? value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }
    : undefined;
  const metadata = object?.metadata;
  if (object?.kind !== "Deployment" || typeof metadata?.name !== "string") return "";
  const namespace = typeof metadata.namespace === "string" ? metadata.namespace : DEFAULT_NAMESPACE;
  return `deployment ${namespace}/${metadata.name} `;
}

function itemOf({ origin, content }: ManifestDocument): Item {
  if ("problem" in content) {
    return { origin, outcome: { refused: new UsageError(content.problem) } };
  }
  try {
    const deployment = parseDeploymentManifest(content.value, origin);
    return { origin, outcome: { deployment } };
  } catch (error) {
    if (!(error instanceof WireFormatError)) throw error;
    const refused = new UsageError(`${nameIn(content.value)}refused: ${error.detail}`, {
      cause: error,
    });
    return { origin, outcome: { refused } };
  }
}

async function itemsFromFiles(paths: readonly string[]): Promise<Item[]> {
  const documents = await readManifests(paths, () => new Response(Deno.stdin.readable).text());
  return documents.map(itemOf);
}

/** `error`, its message prefixed with where its object came from; same kind, same exit code. */
function fromOrigin(origin: string | undefined, error: unknown): FleetError {
  const message = errorMessage(error);
  const kind = exitCodeOf(error) === ExitCode.usage ? "usage" : "failure";
  return new FleetError(kind, origin ? `${origin}: ${message}` : message, { cause: error });
}

/**
 * Applies (or prints) each object in order, one line each: what happened on stdout, a refusal
 * or failure on stderr. A refused object never stops the others, as with kubectl; the exit
 * code is 2 when any was refused, else 1 when any failed.
 */
async function applyItems(items: Item[], flags: ApplyFlags, log: Logger): Promise<void> {
  const codes: number[] = [];
  const fail = (item: Item, error: unknown) => {
    codes.push(reportError(fromOrigin(item.origin, error)));
  };
  const deployments = items.flatMap((item) =>
    "deployment" in item.outcome ? [item.outcome.deployment] : []
  );
  for (const deployment of deployments) warnOfRolloutPolicy(deployment, log);
  if (flags.print || deployments.length === 0) {
    for (const item of items) if ("refused" in item.outcome) fail(item, item.outcome.refused);
    if (flags.print && deployments.length > 0) {
      printLine(deployments.map((d) => YAML.stringify(d).trimEnd()).join("\n---\n"));
    }
  } else {
    await using target = await openStore(flags, log);
    for (const item of items) {
      if ("refused" in item.outcome) {
        fail(item, item.outcome.refused);
        continue;
      }
      const { deployment } = item.outcome;
      try {
        checkWorkloadPolicy(deployment, log);
        await warnOfPortConflicts(target.store, deployment, log);
        const result = await target.store.apply(deployment);
        printLine(
          `deployment ${deployment.metadata.namespace}/${deployment.metadata.name} ${result.outcome} (generation ${result.generation})`,
        );
      } catch (error) {
        fail(item, error);
      }
    }
  }
  if (codes.length > 0) {
    Deno.exitCode = codes.includes(ExitCode.usage) ? ExitCode.usage : ExitCode.failure;
  }
}

function deploymentCommand(): Command {
  return withTarget(
    new Command("deployment")
      .description(
        "Apply a Deployment: from flags, or from files holding the same objects kubectl would apply",
      )
      .addOption(filenameOption())
      .addOption(
        new Option("--name <name>", "deployment name (DNS label)").env("FLEET_DEPLOYMENT_NAME"),
      )
      .addOption(namespaceOption("namespace").default(DEFAULT_NAMESPACE))
      .addOption(new Option("--image <image>", "container image").env("FLEET_DEPLOYMENT_IMAGE"))
      .addOption(
        new Option("--service <name>", "service (container) name; defaults to the deployment name")
          .env("FLEET_DEPLOYMENT_SERVICE"),
      )
      .addOption(
        new Option("--port <host:container[/udp]>", "published port, repeatable")
          .argParser(collect).default([] as string[]).env("FLEET_DEPLOYMENT_PORT"),
      )
      .addOption(
        new Option("--env <NAME=value>", "environment variable, repeatable")
          .argParser(collect).default([] as string[]).env("FLEET_DEPLOYMENT_ENV"),
      )
      .addOption(
        new Option("--volume <host:container[:ro]>", "bind mount, repeatable")
          .argParser(collect).default([] as string[]).env("FLEET_DEPLOYMENT_VOLUME"),
      )
      .addOption(
        new Option("--restart <policy>", "restart policy").choices(RestartPolicies)
          .env("FLEET_DEPLOYMENT_RESTART"),
      )
      .addOption(
        new Option(
          "--selector <selector>",
          "device selector: key=value, key!=value, 'key in (a,b)', 'key notin (a,b)', key, !key; repeatable (ANDed)",
        ).argParser(collect).default([] as string[]).env("FLEET_DEPLOYMENT_SELECTOR"),
      )
      .addOption(
        new Option(
          "--all-bound-devices",
          "no selector: every device an admin bound the namespace to (targetAllBoundDevices)",
        ).env("FLEET_DEPLOYMENT_ALL_BOUND_DEVICES"),
      )
      .addOption(printOption())
      .addOption(forceConflictsOption()),
  )
    .addHelpText(
      "after",
      `
Examples:
  fleet apply deployment --name web --image localhost/web:1 --port 8080:80 --selector site=lab
  fleet apply deployment --name web --image nginx:1.27 --selector 'role in (edge,gateway)' --print
  fleet apply deployment --name web --image localhost/web:1 -n team-a --all-bound-devices
  fleet apply deployment -f web.yaml   (the same as fleet apply -f web.yaml)`,
    )
    .action(async (flags, command) => {
      const log = loggerFrom(flags);
      if (flags.filename.length > 0) {
        // The file describes the whole deployment: a flag beside it would be silently ignored.
        const given: [string, boolean][] = [
          ["--name", flags.name !== undefined],
          ["--namespace", command.getOptionValueSource("namespace") === "cli"],
          ["--image", flags.image !== undefined],
          ["--service", flags.service !== undefined],
          ["--port", flags.port.length > 0],
          ["--env", flags.env.length > 0],
          ["--volume", flags.volume.length > 0],
          ["--restart", flags.restart !== undefined],
          ["--selector", flags.selector.length > 0],
          ["--all-bound-devices", flags.allBoundDevices === true],
        ];
        const conflicting = given.filter(([, set]) => set).map(([flag]) => flag);
        if (conflicting.length > 0) {
          throw new UsageError(
            `-f cannot be combined with ${
              conflicting.join(", ")
            }: the file describes the whole deployment; edit the file or drop -f`,
          );
        }
        await applyItems(await itemsFromFiles(flags.filename), flags, log);
        return;
      }
      if (flags.name === undefined || flags.image === undefined) {
        throw new UsageError("apply deployment needs --name and --image (or -f file.yaml)");
      }
      const deployment = buildDeployment({
        name: flags.name,
        namespace: flags.namespace,
        image: flags.image,
        ports: flags.port,
        env: flags.env,
        volumes: flags.volume,
        selectors: flags.selector,
        allBoundDevices: flags.allBoundDevices === true,
        ...(flags.service !== undefined ? { service: flags.service } : {}),
        ...(flags.restart !== undefined ? { restart: flags.restart } : {}),
      });
      await applyItems([{ outcome: { deployment } }], flags, log);
    });
}

export function applyCommand(): Command {
  const apply = withTarget(
    new Command("apply")
      .description(
        "Create or update Deployments from files, as kubectl apply -f does (or from flags: apply deployment)",
      )
      .addOption(filenameOption())
      .addOption(printOption())
      .addOption(forceConflictsOption()),
  )
    // Its options come before a subcommand: `apply deployment -f` is the subcommand's -f.
    .enablePositionalOptions()
    .addHelpText(
      "after",
      `
Each object is applied in order, one line each; an invalid one is refused (with its file and
document number) and the others are still applied; the exit code is then 2. A field the
Deployment does not have is refused as an unknown field, with its path, as kubectl's strict
validation does.
Kubernetes metadata (uid, resourceVersion, annotations, managedFields...) and status, as in a
file saved with kubectl get -o yaml, are accepted and not applied.

Examples:
  fleet apply -f web.yaml
  fleet apply -f deployments/ -f extra.yaml
  cat web.yaml | fleet apply -f - --target kube
  fleet apply deployment --name web --image localhost/web:1 --selector site=lab`,
    )
    .action(async (flags) => {
      if (flags.filename.length === 0) {
        throw new UsageError(
          "apply needs -f with a file, a directory or '-' (stdin); for one deployment from flags: " +
            "fleet apply deployment --name NAME --image IMAGE",
        );
      }
      const log = loggerFrom(flags);
      await applyItems(await itemsFromFiles(flags.filename), flags, log);
    });
  apply.addCommand(deploymentCommand());
  return apply;
}
