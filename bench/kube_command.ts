import { Command, Option } from "@commander-js/extra-typings";
import { runKubeBench } from "./kube.ts";
import {
  ExitCode,
  logFormatOption,
  loggerFrom,
  logLevelOption,
  UsageError,
} from "../commands/_cli.ts";

function count(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new UsageError(
        `${name} must be an integer from ${min}${
          max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : " up"
        }, got "${text}"`,
      );
    }
    return n;
  };
}

/** `deno task bench:kube`: the control-plane benchmark of the kube source. */
export function kubeCommand(): Command {
  return new Command("kube")
    .description(
      "Benchmark the kube source: a real kube-apiserver, etcd, nats-server and operator against N simulated devices (Device objects, status.aggregate, Reachable); prints one line of figures last",
    )
    .addOption(
      new Option("--devices <n>", "simulated devices").argParser(count("--devices", 1))
        .default(10_000).env("FLEET_BENCH_DEVICES"),
    )
    .addOption(
      new Option("--deployments <n>", "Deployment objects, whose selectors split the fleet")
        .argParser(count("--deployments", 1)).default(100).env("FLEET_BENCH_DEPLOYMENTS"),
    )
    .addOption(
      new Option("--rate <n>", "device state writes per second")
        .argParser(count("--rate", 1)).default(500).env("FLEET_BENCH_RATE"),
    )
    .addOption(
      new Option("--duration <seconds>", "how long the state writes go on")
        .argParser(count("--duration", 1)).default(30).env("FLEET_BENCH_DURATION"),
    )
    .addOption(
      new Option("--connections <n>", "NATS connections the simulated devices share")
        .argParser(count("--connections", 1)).default(4).env("FLEET_BENCH_CONNECTIONS"),
    )
    .addOption(
      new Option(
        "--stale-after <seconds>",
        "the operator's --stale-after; above the 30 s heartbeat period",
      ).argParser(count("--stale-after", 31)).default(60).env("FLEET_BENCH_STALE_AFTER"),
    )
    .addOption(
      new Option("--unreachable-percent <n>", "share of the fleet whose heartbeats stop at the end")
        .argParser(count("--unreachable-percent", 1, 100)).default(10)
        .env("FLEET_BENCH_UNREACHABLE_PERCENT"),
    )
    .addOption(
      new Option(
        "--timeout <seconds>",
        "give up on each wait (Device objects, fan-out, ...) after this",
      )
        .argParser(count("--timeout", 1)).default(600).env("FLEET_BENCH_TIMEOUT"),
    )
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption())
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
        devices: flags.devices,
        deployments: flags.deployments,
        rate: flags.rate,
        durationSeconds: flags.duration,
        connections: flags.connections,
        staleAfterSeconds: flags.staleAfter,
        unreachablePercent: flags.unreachablePercent,
        timeoutSeconds: flags.timeout,
        log: loggerFrom(flags),
      });
      if (!ok) Deno.exitCode = ExitCode.failure;
    });
}
