/** What /proc says about a benchmarked process. */

/** Resident and peak memory (kB) and user+system CPU ticks (1/100 s). */
export interface ProcSample {
  rssKb: number;
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
      hwmKb: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0),
      cpuTicks: Number(stat[11]) + Number(stat[12]),
    };
  } catch {
    return undefined;
  }
}
