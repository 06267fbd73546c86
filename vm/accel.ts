/**
 * Deciding between KVM and TCG. `/dev/kvm` existing is not enough: a nested or
 * paravirtualised KVM (for example PVM, which runs only guests built for it) opens fine and
 * then cannot run a normal guest. So the adapter boots this 512-byte probe under KVM: it
 * writes one byte to qemu's isa-debug-exit port, which makes qemu exit with a known code.
 */

/** The isa-debug-exit port the probe writes to. */
export const PROBE_EXIT_PORT = 0xf4;
/** The byte the probe writes; qemu then exits with (byte << 1) | 1. */
export const PROBE_EXIT_VALUE = 0x31;
export const PROBE_EXIT_CODE = (PROBE_EXIT_VALUE << 1) | 1;

/** A BIOS boot sector: `mov al, 0x31; out 0xf4, al; hlt; jmp $-1`. */
export function kvmProbeBootSector(): Uint8Array {
  const sector = new Uint8Array(512);
  sector.set([0xb0, PROBE_EXIT_VALUE, 0xe6, PROBE_EXIT_PORT, 0xf4, 0xeb, 0xfd]);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** qemu arguments that boot the probe sector (under KVM), with nothing else attached. */
export function kvmProbeArgs(bootSectorPath: string, accel: "kvm" | "tcg" = "kvm"): string[] {
  return [
    "-machine",
    "pc",
    "-accel",
    accel,
    // A probe under TCG (the tests' control run) has no host CPU to pass through.
    "-cpu",
    accel === "kvm" ? "host" : "qemu64",
    "-m",
    "16",
    "-nodefaults",
    "-display",
    "none",
    "-no-reboot",
    "-device",
    `isa-debug-exit,iobase=0x${PROBE_EXIT_PORT.toString(16)},iosize=0x01`,
    "-drive",
    `if=ide,format=raw,file=${bootSectorPath}`,
  ];
}

/**
 * KVM is used only when the host can run guests of the same architecture and the probe
 * proved it; everything else runs under TCG. `why` goes into the log.
 */
export function chooseAccel(input: {
  guestArch: string;
  hostArch: string;
  /**
   * Whether the x86 CPU has VT-x or AMD-V (`vmx`/`svm` in /proc/cpuinfo). Without either,
   * an openable /dev/kvm is paravirtualised (PVM): it runs the real-mode probe but hangs a
   * normal kernel before its first console line. Undefined: not known (not checked).
   */
  hardwareVirt?: boolean;
  /** qemu's exit code, "timeout" when it neither exited nor failed, undefined: no probe. */
  kvmProbeExitCode: number | "timeout" | undefined;
}): { accel: "kvm" | "tcg"; why: string } {
  if (input.guestArch !== input.hostArch) {
    return { accel: "tcg", why: `a ${input.guestArch} guest on a ${input.hostArch} host` };
  }
  if (input.hardwareVirt === false) {
    return {
      accel: "tcg",
      why: "the CPU has no VT-x/AMD-V (vmx/svm), so /dev/kvm is paravirtualised (PVM) and " +
        "runs only guests built for it",
    };
  }
  if (input.kvmProbeExitCode === undefined) return { accel: "tcg", why: "no usable /dev/kvm" };
  if (input.kvmProbeExitCode === "timeout") {
    return { accel: "tcg", why: "/dev/kvm is present but a KVM guest never ran (probe timed out)" };
  }
  if (input.kvmProbeExitCode !== PROBE_EXIT_CODE) {
    return {
      accel: "tcg",
      why: `/dev/kvm is present but cannot run a guest (probe exit code ${input.kvmProbeExitCode})`,
    };
  }
  return { accel: "kvm", why: "KVM runs guests" };
}
