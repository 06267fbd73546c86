/** The two guest architectures a Fleet VM can have, and what differs between them. */

export const VmArches = ["x86_64", "aarch64"] as const;
export type VmArch = typeof VmArches[number];

export interface ArchProfile {
  /** Debian's name for the architecture (debootstrap --arch, package suffixes). */
  debianArch: "amd64" | "arm64";
  /** The kernel metapackage installed in the image. */
  kernelPackage: string;
  qemuSystem: string;
  /** The static user-mode emulator that runs the foreign second stage of debootstrap. */
  qemuUserStatic: string;
  /** Serial console device name inside the guest. */
  console: string;
  /** What `uname -m` prints inside the guest. */
  unameMachine: string;
}

export const archProfiles: Readonly<Record<VmArch, ArchProfile>> = {
  x86_64: {
    debianArch: "amd64",
    kernelPackage: "linux-image-amd64",
    qemuSystem: "qemu-system-x86_64",
    qemuUserStatic: "qemu-x86_64-static",
    console: "ttyS0",
    unameMachine: "x86_64",
  },
  aarch64: {
    debianArch: "arm64",
    kernelPackage: "linux-image-arm64",
    qemuSystem: "qemu-system-aarch64",
    qemuUserStatic: "qemu-aarch64-static",
    console: "ttyAMA0",
    unameMachine: "aarch64",
  },
};

/** The architecture this program runs on, in our names (Deno says x86_64 / aarch64 too). */
export function hostArch(): VmArch {
  return Deno.build.arch;
}
