/**
 * The qemu command line of a Fleet VM, per architecture and accelerator. Pure: every path
 * and port comes in through `QemuSpec`, so what runs is exactly what the tests check.
 */
import { archProfiles, type VmArch } from "./arch.ts";

export const Accels = ["kvm", "tcg"] as const;
export type Accel = typeof Accels[number];

/** Where the guest kernel comes from: the image's own, passed by qemu (direct kernel boot). */
export interface DirectKernel {
  kernel: string;
  initrd: string;
  /** Root file system as the kernel sees it, e.g. `/dev/vda1`. */
  root: string;
}

/** UEFI pflash pair for aarch64; both files already padded to the flash size. */
export interface PflashPair {
  code: string;
  vars: string;
}

export interface QemuSpec {
  name: string;
  arch: VmArch;
  accel: Accel;
  memoryMb: number;
  cpus: number;
  /** The VM's own disk (a qcow2 overlay over the base image). */
  disk: string;
  /** The NoCloud seed image, attached read-only. */
  seed: string;
  boot: DirectKernel;
  /** Required for aarch64 (the `virt` machine boots through UEFI); ignored for x86_64. */
  firmware?: PflashPair;
  /** Loopback port forwarded to the guest's SSH port 22. */
  sshPort: number;
  /** Guest serial console goes to this file (the boot log, for when SSH never comes up). */
  consoleLog: string;
  /** qemu writes its pid here once it runs in the background. */
  pidFile: string;
  /** QMP socket: how a hung guest is power-cycled (`system_reset`, adapters/vm/qmp.ts). */
  qmpSocket: string;
  /** x86_64 machine type; q35 by default (PCIe, what current distributions expect). */
  machine?: "q35" | "pc";
}

/** The program and arguments that start the VM in the background (`-daemonize`). */
export function qemuCommand(spec: QemuSpec): { program: string; args: string[] } {
  const profile = archProfiles[spec.arch];
  if (spec.arch === "aarch64" && spec.firmware === undefined) {
    throw new TypeError("aarch64 VMs need UEFI firmware (spec.firmware)");
  }
  const args: string[] = ["-name", `fleet-${spec.name},process=fleet-vm-${spec.name}`];
  args.push(...machineArgs(spec));
  args.push("-smp", String(spec.cpus), "-m", String(spec.memoryMb));
  // No default devices: nothing a headless device does not have (no VGA, no floppy, no CD).
  args.push("-nodefaults", "-display", "none");
  if (spec.arch === "aarch64" && spec.firmware) {
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${drivePath(spec.firmware.code)}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${drivePath(spec.firmware.vars)}`,
    );
  }
  args.push(
    "-kernel",
    spec.boot.kernel,
    "-initrd",
    spec.boot.initrd,
    "-append",
    kernelCommandLine(spec.arch, spec.boot.root),
  );
  // virtio-blk for both disks: cloud kernels often lack SATA/CD drivers, never virtio.
  args.push(
    "-drive",
    `if=none,id=disk0,format=qcow2,discard=unmap,file=${drivePath(spec.disk)}`,
    "-device",
    "virtio-blk-pci,drive=disk0",
    "-drive",
    `if=none,id=seed0,format=raw,readonly=on,file=${drivePath(spec.seed)}`,
    "-device",
    "virtio-blk-pci,drive=seed0",
  );
  // User-mode networking: no bridge, no root; the guest's SSH appears on a loopback port.
  args.push(
    "-netdev",
    `user,id=net0,hostfwd=tcp:127.0.0.1:${spec.sshPort}-:22`,
    "-device",
    "virtio-net-pci,netdev=net0",
    // Entropy for the guest's first-boot key generation (sshd host keys), which otherwise
    // can stall for minutes on an idle VM.
    "-device",
    "virtio-rng-pci",
  );
  args.push(
    "-serial",
    `file:${spec.consoleLog}`,
    "-monitor",
    "none",
    "-qmp",
    `unix:${spec.qmpSocket},server=on,wait=off`,
    "-daemonize",
    "-pidfile",
    spec.pidFile,
  );
  return { program: profile.qemuSystem, args };
}

function machineArgs(spec: QemuSpec): string[] {
  // Multi-threaded TCG: one host thread per virtual CPU instead of one for all.
  const accel = spec.accel === "kvm" ? ["-accel", "kvm"] : ["-accel", "tcg,thread=multi"];
  // KVM runs the host's CPU model; under TCG the emulated model matters for speed.
  if (spec.arch === "x86_64") {
    return [
      "-machine",
      spec.machine ?? "q35",
      ...accel,
      "-cpu",
      spec.accel === "kvm" ? "host" : "max",
    ];
  }
  return [
    "-machine",
    "virt",
    ...accel,
    // `max` under TCG emulates pointer authentication in software, which makes a boot
    // several times slower; cortex-a72 (the Raspberry Pi 4's core) does not have it.
    "-cpu",
    spec.accel === "kvm" ? "host" : "cortex-a72",
  ];
}

/**
 * The guest kernel's command line: root disk and serial console. `net.ifnames=0` names the
 * one NIC eth0 on every machine type, so the seed's network config can name it.
 */
export function kernelCommandLine(arch: VmArch, root: string): string {
  return `root=${root} ro console=${archProfiles[arch].console} rootwait net.ifnames=0`;
}

/** qemu's -drive splits on commas; a comma in a path is written twice. */
function drivePath(path: string): string {
  return path.replaceAll(",", ",,");
}
