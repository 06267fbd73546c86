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

/** A sample of a benchmarked process (`what`: "the agent"), which must still be running. */
export function runningSample(pid: number, what: string): ProcSample {
  const sample = procSample(pid);
  if (!sample) throw new Error(`${what} (pid ${pid}) exited during the benchmark`);
  return sample;
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

/** CPU use of a process between two samples `ms` apart, in % of one core; NaN without both. */
export function cpuPercent(
  a: ProcSample | undefined,
  b: ProcSample | undefined,
  ms: number,
): number {
  if (!a || !b) return NaN;
  // Ticks are 1/100 s: ticks per second is already a percentage of one core.
  return (b.cpuTicks - a.cpuTicks) / (ms / 1000);
}

/** The peak resident memory of a process, sampled every `everyMs` until {@link PeakRss.stop}. */
export class PeakRss {
  readonly #pid: number | "self";
  readonly #timer: ReturnType<typeof setInterval>;
  #peakKb = 0;

  constructor(pid: number | "self", everyMs: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.#see(procSample(pid)?.rssKb), everyMs);
  }

  /**
   * Stops sampling. @returns the peak in kB, the kernel's high-water mark (VmHWM) included: it
   * also catches what fell between two samples.
   */
  stop(): number {
    clearInterval(this.#timer);
    this.#see(procSample(this.#pid)?.hwmKb);
    return this.#peakKb;
  }

  #see(kb: number | undefined): void {
    if (kb !== undefined) this.#peakKb = Math.max(this.#peakKb, kb);
  }
}
