import { Command, Option } from "@commander-js/extra-typings";
import YAML from "yaml";
import {
  buildDeployment,
  DEFAULT_NAMESPACE,
  Deployment,
  parseWith,
  RestartPolicies,
} from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import {
  logFormatOption,
  loggerFrom,
  logLevelOption,
  namespaceOption,
  UsageError,
  withNatsConnection,
} from "./_cli.ts";
import { kubeconfigOption, openStore, targetOption } from "./_kube.ts";

const collect = (value: string, previous: string[]) => [...previous, value];

async function readDeploymentFile(path: string): Promise<Deployment> {
  let text: string;
  try {
    text = path === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`Cannot read ${path}: ${(error as Error).message}`);
  }
  const source = path === "-" ? "stdin" : path;
  const documents = YAML.parseAllDocuments(text);
  if (!Array.isArray(documents) || documents.length === 0) {
    throw new UsageError(`${source} is empty: it should hold one Deployment`);
  }
  if (documents.length > 1) {
    throw new UsageError(
      `${source} holds ${documents.length} YAML documents: apply one Deployment per file`,
    );
  }
  const [document] = documents;
  const problem = document?.errors[0];
  if (problem) {
    const reason = problem.message.split("\n")[0]?.replace(/:$/, "");
    throw new UsageError(`${source} is not valid YAML: ${reason}`);
  }
  const raw: unknown = document?.toJS();
  if (raw === null || raw === undefined) {
    throw new UsageError(`${source} is empty: it should hold one Deployment`);
  }
  return parseWith(Deployment, raw, `Deployment in ${source}`);
}

export function applyCommand(): Command {
  const apply = new Command("apply").description("Create or update fleet objects");
  withNatsConnection(
    apply.command("deployment")
      .description(
        "Apply a Deployment: from flags, or from a file holding the same object kubectl would apply",
      )
      .addOption(
        new Option(
          "-f, --filename <file>",
          "YAML or JSON file with a Deployment object ('-' for stdin)",
        ).env("FLEET_DEPLOYMENT_FILE"),
      )
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
        new Option("--print", "print the Deployment as YAML instead of applying it")
          .env("FLEET_APPLY_PRINT"),
      )
      .addOption(targetOption())
      .addOption(kubeconfigOption())
      .addOption(
        new Option(
          "--force-conflicts",
          "kube: take over fields another manager (e.g. kubectl) owns",
        ).env("FLEET_APPLY_FORCE_CONFLICTS"),
      ),
  )
    .addOption(logLevelOption().default("warn" as const)) // one-shot commands: quiet unless asked
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Examples:
  fleet apply deployment --name web --image localhost/web:1 --port 8080:80 --selector site=lab
  fleet apply deployment --name web --image nginx:1.27 --selector 'role in (edge,gateway)' --print
  fleet apply deployment -f web.yaml`,
    )
    .action(async (flags, command) => {
      const log = loggerFrom(flags);
      let deployment: Deployment;
      if (flags.filename !== undefined) {
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
        ];
        const conflicting = given.filter(([, set]) => set).map(([flag]) => flag);
        if (conflicting.length > 0) {
          throw new UsageError(
            `-f cannot be combined with ${
              conflicting.join(", ")
            }: the file describes the whole deployment; edit the file or drop -f`,
          );
        }
        deployment = await readDeploymentFile(flags.filename);
      } else {
        if (flags.name === undefined || flags.image === undefined) {
          throw new UsageError("apply deployment needs --name and --image (or -f file.yaml)");
        }
        deployment = buildDeployment({
          name: flags.name,
          namespace: flags.namespace,
          image: flags.image,
          ports: flags.port,
          env: flags.env,
          volumes: flags.volume,
          selectors: flags.selector,
          ...(flags.service !== undefined ? { service: flags.service } : {}),
          ...(flags.restart !== undefined ? { restart: flags.restart } : {}),
        });
      }
      if (flags.print) {
        printLine(YAML.stringify(deployment).trimEnd());
        return;
      }
      await using target = await openStore(flags, log);
      const result = await target.store.apply(deployment);
      printLine(
        `deployment ${deployment.metadata.namespace}/${deployment.metadata.name} ${result.outcome} (generation ${result.generation})`,
      );
    });
  return apply;
}
