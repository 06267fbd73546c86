/** Finds out whether KVM can really run a guest here (see vm/accel.ts for why a probe). */
import {
  type Accel,
  chooseAccel,
  hostArch,
  kvmProbeArgs,
  kvmProbeBootSector,
  PROBE_EXIT_CODE,
  type VmArch,
} from "../../vm/mod.ts";
import { findTool } from "./tools.ts";

const PROBE_TIMEOUT_MS = 10_000;

async function kvmUsable(): Promise<boolean> {
  try {
    const file = await Deno.open("/dev/kvm", { read: true, write: true });
    file.close();
    return true;
  } catch {
    return false;
  }
}

/** Boots the probe sector under KVM; its exit code, or "timeout". */
async function runProbe(): Promise<number | "timeout"> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-kvm-probe-" });
  try {
    const sector = `${dir}/probe.img`;
    await Deno.writeFile(sector, kvmProbeBootSector());
    const child = new Deno.Command(findTool("qemu-system-x86_64"), {
      args: kvmProbeArgs(sector),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), PROBE_TIMEOUT_MS);
    });
    const result = await Promise.race([child.status.then((s) => s.code), timeout]);
    clearTimeout(timer);
    if (result === "timeout") {
      child.kill("SIGKILL");
      await child.status;
    }
    return result;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** On x86: whether /proc/cpuinfo shows VT-x or AMD-V; undefined elsewhere or unreadable. */
async function hardwareVirt(): Promise<boolean | undefined> {
  if (hostArch() !== "x86_64") return undefined;
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(await Deno.readTextFile("/proc/cpuinfo"));
  } catch {
    return undefined;
  }
}

/** KVM when the host has the guest's architecture and the probe ran; TCG otherwise. */
export async function detectAccel(guestArch: VmArch): Promise<{ accel: Accel; why: string }> {
  const host = hostArch();
  const virt = host === guestArch ? await hardwareVirt() : undefined;
  let probe: number | "timeout" | undefined;
  if (host === guestArch && virt !== false && await kvmUsable()) {
    // The probe is x86 code; on an arm64 host an openable /dev/kvm is trusted as it is.
    probe = host === "x86_64" ? await runProbe() : PROBE_EXIT_CODE;
  }
  return chooseAccel({
    guestArch,
    hostArch: host,
    ...(virt !== undefined ? { hardwareVirt: virt } : {}),
    kvmProbeExitCode: probe,
  });
}
