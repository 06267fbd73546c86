/** What /proc says about a benchmarked process. */

/**
 * Resident and peak memory (kB), the resident part that maps files (for Deno: mostly the
 * runtime binary's code and data) and the anonymous part (V8 heap, allocator), and
 * user+system CPU ticks (1/100 s).
 */
export interface ProcSample {
  rssKb: number;
  rssFileKb: number;
  rssAnonKb: number;
  hwmKb: number;
  cpuTicks: number;
}

/** A sample of a process (or this one); undefined once it has exited. */
export function procSample(pid: number | "self"): ProcSample | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
    return {
      rssKb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0),
      rssFileKb: Number(/RssFile:\s+(\d+)/.exec(status)?.[1] ?? 0),
      rssAnonKb: Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0),
      hwmKb: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0),
      cpuTicks: Number(stat[11]) + Number(stat[12]),
    };
  } catch {
    return undefined;
  }
}

/** Pid of the process whose argv[0] is `program` and whose command line names `marker`. */
export function findPid(program: string, marker: string): number | undefined {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (argv[0]?.split("/").pop() === program && argv.some((a) => a.includes(marker))) {
        return Number(entry.name);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}
