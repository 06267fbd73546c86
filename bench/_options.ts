/**
 * The options both control-plane benchmarks (`bench:fleet`, `bench:kube`) take: the simulated
 * fleet's size, the state writes' rate and duration, the devices' NATS connections, the timeout
 * of each wait and the log flags. Each benchmark gives its own defaults.
 */
import { type Command, Option, type OptionValues } from "@commander-js/extra-typings";
import type { Logger } from "../adapters/logger.ts";
import {
  integerParser,
  type LogFlags,
  logFormatOption,
  loggerFrom,
  logLevelOption,
} from "../commands/_cli.ts";

/** What a benchmark's run takes from the shared options. */
export interface SimulationOptions {
  devices: number;
  deployments: number;
  /** State writes per second; 0 (where allowed) = as fast as the pipeline allows. */
  rate: number;
  durationSeconds: number;
  /** NATS connections the simulated devices share. */
  connections: number;
  /** Each wait (fan-out, convergence, ...) gives up after this. */
  timeoutSeconds: number;
  log: Logger;
}

/** What differs between the benchmarks. */
export interface SimulationDefaults {
  devices: number;
  rate: number;
  /** The smallest --rate: 0 (as fast as the pipeline allows) where the benchmark supports it. */
  minRate: 0 | 1;
  durationSeconds: number;
  timeoutSeconds: number;
}

/** The values of {@link withSimulationOptions}' options as commander hands them over. */
export interface SimulationFlags extends LogFlags {
  devices: number;
  deployments: number;
  rate: number;
  duration: number;
  connections: number;
  timeout: number;
}

/** Adds the shared options to `command`, typed, for its action to read. */
export function withSimulationOptions<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(
  command: Command<Args, Opts, GlobalOpts>,
  defaults: SimulationDefaults,
): Command<Args, Opts & SimulationFlags, GlobalOpts> {
  const options = [
    new Option("--devices <n>", "simulated devices").argParser(integerParser("--devices", 1))
      .default(defaults.devices).env("FLEET_BENCH_DEVICES"),
    new Option("--deployments <n>", "deployments, whose selectors split the fleet by labels")
      .argParser(integerParser("--deployments", 1)).default(100).env("FLEET_BENCH_DEPLOYMENTS"),
    new Option(
      "--rate <n>",
      `device state writes per second${defaults.minRate === 0 ? " (0: as fast as possible)" : ""}`,
    ).argParser(integerParser("--rate", defaults.minRate)).default(defaults.rate)
      .env("FLEET_BENCH_RATE"),
    new Option("--duration <seconds>", "how long the state writes go on")
      .argParser(integerParser("--duration", 1)).default(defaults.durationSeconds)
      .env("FLEET_BENCH_DURATION"),
    new Option("--connections <n>", "NATS connections the simulated devices share")
      .argParser(integerParser("--connections", 1)).default(4).env("FLEET_BENCH_CONNECTIONS"),
    new Option("--timeout <seconds>", "give up on each wait (fan-out, convergence, ...) after this")
      .argParser(integerParser("--timeout", 1)).default(defaults.timeoutSeconds)
      .env("FLEET_BENCH_TIMEOUT"),
    logLevelOption().default("warn" as const),
    logFormatOption(),
  ];
  for (const option of options) command.addOption(option);
  // The values are what SimulationFlags describes; declared rather than inferred, as
  // withNatsConnection() does.
  return command as Command<Args, Opts & SimulationFlags, GlobalOpts>;
}

/** The run's options from the shared flags. */
export function simulationFrom(flags: SimulationFlags): SimulationOptions {
  return {
    devices: flags.devices,
    deployments: flags.deployments,
    rate: flags.rate,
    durationSeconds: flags.duration,
    connections: flags.connections,
    timeoutSeconds: flags.timeout,
    log: loggerFrom(flags),
  };
}
