import { Command, Option } from "@commander-js/extra-typings";
import { runKubeBench } from "./kube.ts";
import { ExitCode, integerParser } from "../commands/_cli.ts";
import { simulationFrom, withSimulationOptions } from "./_options.ts";

/** `deno task bench:kube`: the control-plane benchmark of the kube source. */
export function kubeCommand(): Command {
  const command = new Command("kube")
    .description(
      "Benchmark the kube source: a real kube-apiserver, etcd, nats-server and operator against N simulated devices (Device objects, status.aggregate, Reachable); prints one line of figures last",
    );
  return withSimulationOptions(command, {
    devices: 10_000,
    rate: 500,
    minRate: 1,
    durationSeconds: 30,
    timeoutSeconds: 600,
  })
    .addOption(
      new Option(
        "--stale-after <seconds>",
        "the operator's --stale-after; above the 30 s heartbeat period",
      ).argParser(integerParser("--stale-after", 31)).default(60).env("FLEET_BENCH_STALE_AFTER"),
    )
    .addOption(
      new Option("--unreachable-percent <n>", "share of the fleet whose heartbeats stop at the end")
        .argParser(integerParser("--unreachable-percent", 1, 100)).default(10)
        .env("FLEET_BENCH_UNREACHABLE_PERCENT"),
    )
    .addHelpText(
      "after",
      `
Needs nats-server and kube-apiserver + etcd (scripts/build-kube-test-bins.sh builds these into
~/.cache/fleet/kube-<version>-etcd-<version>/); starts them itself and removes them at the end.

Examples:
  deno task bench:kube --devices 1000 --deployments 100 --rate 500 --duration 30
  deno task bench:kube --devices 10000 --stale-after 45`,
    )
    .action(async (flags) => {
      const ok = await runKubeBench({
        ...simulationFrom(flags),
        staleAfterSeconds: flags.staleAfter,
        unreachablePercent: flags.unreachablePercent,
      });
      if (!ok) Deno.exitCode = ExitCode.failure;
    });
}
