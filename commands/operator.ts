import { Command, Option } from "@commander-js/extra-typings";
import {
  archImageRef,
  buildImageIndex,
  bundleProgram,
  createOperator,
  electionTimings,
  HELM_CHART_NAME,
  helmChart,
  IMAGE_ARCHES,
  type ImageArch,
  imageSizeLines,
  installCrds,
  KubeLeaseStore,
  type LeaseStore,
  NatsLeaseStore,
  OPERATOR_LEASE_NAME,
  OperatorHealth,
  type OperatorOptions,
  registerOperatorMetrics,
  runAsLeader,
} from "../operator/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { crdsYaml } from "../crd/crds.ts";
import { printLine } from "../adapters/output.ts";
import {
  connectFromFlags,
  ExitCode,
  integerParser,
  logFormatOption,
  loggerFrom,
  logLevelOption,
  shutdownSignal,
  UsageError,
  withNatsConnection,
} from "./_cli.ts";
import { kubeClientFrom, kubeconfigOption } from "./_kube.ts";
import { healthPortOption, serveHealthIfAsked } from "./_health.ts";
import { MetricsRegistry, registerBuildInfo } from "../adapters/metrics.ts";
import { ConnectionState } from "../adapters/nats/mod.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { fleetCacheDir } from "../adapters/cache_dir.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";

/** The leader-election flags, the same for both sources. */
interface ElectionFlags {
  leaderElect?: true | undefined;
  identity?: string | undefined;
  leaseDuration: number;
}

/**
 * Runs `lead` until `signal` aborts; with --leader-elect only while this replica holds the
 * lease in `store`. A lost lease ends the command with a failure exit code: the supervisor
 * restarts the replica as a standby, and nothing writes as a non-leader meanwhile.
 */
async function leadOrStandBy(
  flags: ElectionFlags,
  store: () => LeaseStore,
  log: Logger,
  signal: AbortSignal,
  lead: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  if (!flags.leaderElect) return await lead(signal);
  const outcome = await runAsLeader(
    {
      store: store(),
      // Host name and process id: two replicas on one host must never share an identity.
      identity: flags.identity ?? `${Deno.hostname()}-${Deno.pid}`,
      log,
      ...electionTimings(flags.leaseDuration),
    },
    signal,
    lead,
  );
  if (outcome === "lost") Deno.exitCode = ExitCode.failure;
}

function runCommand(version: string): Command {
  return withNatsConnection(
    new Command("run")
      .description("Run the operator")
      .addOption(
        new Option(
          "--source <source>",
          "where Deployments live: nats (embedded, no Kubernetes) or kube (Deployment CRs)",
        ).choices(["nats", "kube"] as const).default("nats" as const).env("FLEET_SOURCE"),
      ),
  )
    .addOption(kubeconfigOption())
    .addOption(
      new Option(
        "--leader-elect",
        "run as one of several replicas; only the lease holder writes (the lease is a Kubernetes " +
          "Lease with --source kube, the key operator in the NATS bucket fleet-leases with --source nats)",
      )
        .env("FLEET_LEADER_ELECT"),
    )
    .addOption(
      new Option(
        "--lease-namespace <namespace>",
        "namespace of the leader-election Lease (--source kube)",
      )
        .default("fleet-system").env("FLEET_LEASE_NAMESPACE"),
    )
    .addOption(
      new Option(
        "--identity <name>",
        "this replica's name in the lease (default: <host name>-<process id>)",
      )
        .env("FLEET_IDENTITY"),
    )
    .addOption(
      new Option(
        "--lease-duration <seconds>",
        "a standby takes over after the leader missed renewing for this long",
      )
        .argParser(integerParser("--lease-duration", 1)).default(15).env("FLEET_LEASE_DURATION"),
    )
    .addOption(
      new Option("--replicas <n>", "bucket replicas (3 on a NATS cluster)")
        .argParser(integerParser("--replicas", 1)).default(1).env("FLEET_REPLICAS"),
    )
    .addOption(
      new Option(
        "--stale-after <seconds>",
        "a device with no heartbeat for this long is unreachable",
      )
        .argParser(integerParser("--stale-after", 1)).default(90).env("FLEET_STALE_AFTER"),
    )
    .addOption(
      new Option(
        "--allow-unbound-namespaces",
        "let a namespace no admin bound to devices target every device (development only; " +
          "without it such a namespace targets none: bind it with fleet namespace bind)",
      ).env("FLEET_ALLOW_UNBOUND_NAMESPACES"),
    )
    .addOption(
      new Option(
        "--revision-history <n>",
        "workload revisions kept per deployment, for fleet rollout history and rollbacks",
      )
        .argParser(integerParser("--revision-history", 1, 1000)).default(10)
        .env("FLEET_REVISION_HISTORY"),
    )
    .addOption(healthPortOption("FLEET_OPERATOR_HEALTH_PORT"))
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
With --health-port, /readyz answers 200 once connected to NATS and, on the leader, once the
fleet's current state is read (a standby waiting for the lease is ready too).

Examples:
  fleet operator run --nats-url nats://10.0.0.5:4222 --health-port 8080
  fleet operator run --leader-elect --lease-duration 15 --nats-url nats://10.0.0.5:4222
  fleet operator run --source kube --leader-elect --nats-url nats://nats.fleet:4222`,
    )
    .action(async (flags) => {
      if (flags.identity === "") {
        throw new UsageError("--identity must not be empty: it names this replica in the lease");
      }
      const log = loggerFrom(flags).with({ component: "operator" });
      const signal = shutdownSignal(log);
      // Served before connecting: a liveness probe must not kill a replica waiting for NATS.
      const link: { state?: ConnectionState } = {};
      const health = new OperatorHealth({
        get connected() {
          return link.state?.connected ?? false;
        },
      });
      const metrics = new MetricsRegistry();
      registerBuildInfo(metrics, version);
      const reconciled = registerOperatorMetrics(metrics, health);
      await using _health = serveHealthIfAsked(flags.healthPort, {
        notReady: () => health.notReady(),
        metrics,
        log,
        signal,
      });
      const nc = await connectFromFlags(flags, log, {
        name: "fleet-operator",
        waitOnFirstConnect: true,
        signal,
      });
      link.state = new ConnectionState(nc);
      const common = {
        nc,
        log,
        replicas: flags.replicas,
        staleAfterMs: flags.staleAfter * 1000,
        allowUnboundNamespaces: flags.allowUnboundNamespaces === true,
        reconciled,
        revisionHistory: flags.revisionHistory,
      };
      const leadWith = async (options: OperatorOptions, leading: AbortSignal) => {
        const operator = createOperator(options);
        health.leadWith(operator);
        try {
          await operator.run(leading);
        } finally {
          health.standBy();
        }
      };
      try {
        if (flags.source === "nats") {
          await leadOrStandBy(
            flags,
            () => new NatsLeaseStore(nc, { replicas: flags.replicas }),
            log,
            signal,
            (leading) => leadWith(common, leading),
          );
          return;
        }
        using kube = await kubeClientFrom(flags);
        const lead = (leading: AbortSignal) =>
          leadWith({ ...common, source: { kind: "kube", client: kube } }, leading);
        await leadOrStandBy(
          flags,
          () =>
            new KubeLeaseStore(kube, {
              namespace: flags.leaseNamespace,
              name: OPERATOR_LEASE_NAME,
            }),
          log,
          signal,
          lead,
        );
      } finally {
        await nc.close();
      }
    });
}

function installCommand(): Command {
  return new Command("install")
    .description(
      "Install the CRDs (Deployment, Device) into the cluster and wait until they are Established",
    )
    .addOption(kubeconfigOption())
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example:
  fleet operator install --kubeconfig ~/.kube/config`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      using kube = await kubeClientFrom(flags);
      for (const name of await installCrds(kube, log)) {
        printLine(`customresourcedefinition ${name} established`);
      }
    });
}

async function writeFiles(dir: string, files: Iterable<[string, string]>) {
  for (const [path, content] of files) {
    const target = `${dir}/${path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(target, content);
  }
}

function chartCommand(version: string): Command {
  return new Command("chart")
    .description(
      "Write the Helm chart of the control plane: NATS with the auth callout, the callout, the operator",
    )
    .addOption(
      new Option("-o, --output <dir>", "directory to write into (created if needed)")
        .makeOptionMandatory().env("FLEET_CHART_DIR"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Writes DIR/${HELM_CHART_NAME}/ (the chart; CRDs in crds/ are kept on uninstall; values.yaml documents
every setting). The image it runs comes from 'fleet operator image'. README.md, "Install on
OKD", goes through the Secrets it reads.

Example:
  fleet operator chart --output out
  helm install fleet out/${HELM_CHART_NAME} -n fleet-system -f fleet-values.yaml`,
    )
    .action(async (flags) => {
      const out = flags.output;
      await writeFiles(`${out}/${HELM_CHART_NAME}`, helmChart({ version, crdsYaml: crdsYaml() }));
      printLine(`wrote ${out}/${HELM_CHART_NAME} (Helm chart)`);
    });
}

function imageArches(list: string): ImageArch[] {
  const arches = list.split(",").map((a) => a.trim());
  for (const arch of arches) {
    if (!(arch in IMAGE_ARCHES)) {
      throw new UsageError(
        `Unknown --arch "${arch}": choose from ${Object.keys(IMAGE_ARCHES).join(", ")}`,
      );
    }
  }
  return [...new Set(arches as ImageArch[])];
}

function imageCommand(version: string): Command {
  return new Command("image")
    .description(
      "Build the fleet image (operator and callout) for amd64 and arm64 as one multi-arch index",
    )
    .addOption(
      new Option("-t, --tag <name>", "name of the image index, with a tag")
        .default(`localhost/fleet:${version}`).env("FLEET_IMAGE_TAG"),
    )
    .addOption(
      new Option("--arch <list>", "architectures, comma-separated (amd64, arm64)")
        .default("amd64,arm64").env("FLEET_IMAGE_ARCH"),
    )
    .addOption(
      new Option("--push <destination>", "push the index and its images there (registry/repo:tag)")
        .env("FLEET_IMAGE_PUSH"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Builds, with Podman, one image per architecture FROM scratch: the Deno runtime pinned in
packaging/deno-runtime.sha512 for that architecture (fetched from npm once, cached in
~/.cache/fleet), its loader and libraries (for arm64 on an amd64 host from Debian's
libc6-arm64-cross and libgcc-s1-arm64-cross) and the bundled program. Each is tagged NAME-ARCH;
NAME is the manifest list of them. Run it from a checkout of Fleet's source. Pushing uses the
credentials of 'podman login'. The same image runs the operator (the default command) and the
auth callout (arguments: callout run ...).

Example:
  deno task fleet operator image --tag localhost/fleet:${version} \\
    --push registry.example.com/fleet/fleet:${version}`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      const arches = imageArches(flags.arch);
      archImageRef(flags.tag, arches[0]!); // refuses a name without a tag before the build
      const scratch = await Deno.makeTempDir({ prefix: "fleet-image-" });
      try {
        const bundle = await bundleProgram(scratch);
        await using service = await startPodmanService();
        using podman = new PodmanClient({ socketPath: service.socketPath });
        const images = await buildImageIndex({
          podman,
          name: flags.tag,
          arches,
          version,
          bundle,
          cacheDir: fleetCacheDir(),
          onArch: (arch) => log.info(`building the linux/${arch} image`),
        });
        for (const line of imageSizeLines(images)) printLine(line);
        printLine(`${flags.tag}  image index of ${arches.map((a) => `linux/${a}`).join(", ")}`);
        if (flags.push !== undefined) {
          await podman.pushManifestList(flags.tag, flags.push);
          printLine(`pushed ${flags.tag} to ${flags.push}`);
        }
      } finally {
        await Deno.remove(scratch, { recursive: true });
      }
    });
}

function crdsCommand(): Command {
  return new Command("crds")
    .description("Print the CRDs as YAML (for kubectl apply -f - or GitOps)")
    .action(() => printLine(crdsYaml().trimEnd()));
}

export function operatorCommand(version: string): Command {
  const operator = new Command("operator").description(
    "The control plane that targets devices and aggregates status",
  );
  operator.addCommand(runCommand(version));
  operator.addCommand(installCommand());
  operator.addCommand(crdsCommand());
  operator.addCommand(chartCommand(version));
  operator.addCommand(imageCommand(version));
  return operator;
}
