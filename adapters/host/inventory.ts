/** Reads what the device is: hostname, architecture, OS, kernel, CPUs and memory. */
import type { Inventory } from "../../core/mod.ts";

/** `PRETTY_NAME` from os-release, e.g. "Debian GNU/Linux 12 (bookworm)". */
async function osName(): Promise<string> {
  for (const path of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      const text = await Deno.readTextFile(path);
      const line = text.split("\n").find((l) => l.startsWith("PRETTY_NAME="));
      if (line) return line.slice("PRETTY_NAME=".length).replace(/^"|"$/g, "");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return Deno.build.os;
}

/** The host's inventory; `agentVersion` is the running program's version. */
export async function readInventory(agentVersion: string): Promise<Inventory> {
  return {
    hostname: Deno.hostname(),
    arch: Deno.build.arch,
    os: await osName(),
    kernel: Deno.osRelease(),
    cpuCores: navigator.hardwareConcurrency,
    memoryMb: Math.round(Deno.systemMemoryInfo().total / 1024 / 1024),
    agentVersion,
  };
}
