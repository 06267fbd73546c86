import { Command, Option } from "@commander-js/extra-typings";
import { runFleetBench } from "./fleet.ts";
import { kubeCommand } from "./kube_command.ts";
import { ExitCode, integerParser } from "../commands/_cli.ts";
import { simulationFrom, withSimulationOptions } from "./_options.ts";
import { reportError } from "../commands/_report.ts";

function fleetCommand(): Command {
  const command = new Command("fleet")
    .description(
      "Benchmark the control plane: a real operator against N simulated devices (no podman); prints one line of figures last",
    );
  return withSimulationOptions(command, {
    devices: 1000,
    rate: 1000,
    minRate: 0,
    durationSeconds: 20,
    timeoutSeconds: 120,
  })
    .addOption(
      // Not FLEET_NATS_URL: the benchmark writes into the buckets of the server it attaches to,
      // so a URL set for the fleet commands must not point it at a real fleet.
      new Option("--nats-url <urls>", "attach to these nats-servers instead of starting any")
        .env("FLEET_BENCH_NATS_URL"),
    )
    .addOption(
      new Option("--cluster", "start a 3-server nats-server cluster instead of one server")
        .conflicts("natsUrl").env("FLEET_BENCH_CLUSTER"),
    )
    .addOption(
      new Option("--replicas <n>", "replicas of the fleet buckets (default: 3 with --cluster)")
        .argParser(integerParser("--replicas", 1)).env("FLEET_BENCH_REPLICAS"),
    )
    .addOption(
      new Option(
        "--operator <where>",
        "process: a child `fleet operator run` (its RSS/CPU read from /proc); inline: this process",
      ).choices(["process", "inline"] as const).default("process" as const)
        .env("FLEET_BENCH_OPERATOR"),
    )
    .addOption(
      new Option("--cpu-prof <dir>", "write a V8 CPU profile of the operator process into DIR")
        .env("FLEET_BENCH_CPU_PROF"),
    )
    .addHelpText(
      "after",
      `
Needs nats-server on this machine (unless --nats-url). Writes into the fleet buckets of the
server it uses: attach only to a scratch server.

Examples:
  deno task bench:fleet --devices 1000 --deployments 100 --rate 1000 --duration 20
  deno task bench:fleet --devices 10000 --deployments 100 --rate 5000 --duration 30
  deno task bench:fleet --cluster --devices 10000 --deployments 100 --rate 5000`,
    )
    .action(async (flags) => {
      const ok = await runFleetBench({
        ...simulationFrom(flags),
        natsUrl: flags.natsUrl,
        cluster: flags.cluster ?? false,
        replicas: flags.replicas ?? (flags.cluster ? 3 : 1),
        operator: flags.operator,
        cpuProfDir: flags.cpuProf,
      });
      if (!ok) Deno.exitCode = ExitCode.failure;
    });
}

/** The benchmarks' own program (`deno task bench:fleet`, `bench:kube`): not part of `fleet`. */
export function benchProgram(): Command {
  const bench = new Command("bench").description("Benchmarks that print figures");
  bench.addCommand(fleetCommand());
  bench.addCommand(kubeCommand());
  return bench;
}

if (import.meta.main) {
  try {
    await benchProgram().parseAsync(Deno.args, { from: "user" });
  } catch (error) {
    Deno.exitCode = reportError(error);
  }
}
