/**
 * UEFI firmware discovery for aarch64 VMs: the QEMU firmware descriptors
 * (`/usr/share/qemu/firmware/*.json`, the interop format libvirt reads), then the paths
 * distributions install to. Pure: the caller reads the files and says which paths exist.
 */
import * as z from "zod";
import type { VmArch } from "./arch.ts";

/** The directories QEMU's firmware interop spec says to search, highest priority first. */
export const FIRMWARE_DESCRIPTOR_DIRS = [
  "/etc/qemu/firmware",
  "/usr/share/qemu/firmware",
] as const;

/** The `virt` machine maps each of its two flash devices as 64 MiB; images must be that size. */
export const PFLASH_SIZE = 64 * 1024 * 1024;

const flashFile = z.object({ filename: z.string().min(1), format: z.string().default("raw") });

/** The part of a firmware descriptor we use; everything else in it is ignored. */
export const FirmwareDescriptorSchema = z.object({
  "interface-types": z.array(z.string()),
  mapping: z.object({
    device: z.string(),
    executable: flashFile.optional(),
    "nvram-template": flashFile.optional(),
  }),
  targets: z.array(z.object({ architecture: z.string(), machines: z.array(z.string()) })),
  features: z.array(z.string()).default([]),
});
export type FirmwareDescriptor = z.infer<typeof FirmwareDescriptorSchema>;

export interface FirmwareChoice {
  code: string;
  /** Variable store template; undefined when the firmware has none (an empty one is made). */
  varsTemplate?: string;
  /** Where the choice came from, for the log: a descriptor file or "well-known path". */
  source: string;
}

/** Known install locations, for hosts without descriptors (older or other distributions). */
export const WELL_KNOWN_AARCH64: readonly { code: string; vars?: string }[] = [
  { code: "/usr/share/AAVMF/AAVMF_CODE.fd", vars: "/usr/share/AAVMF/AAVMF_VARS.fd" }, // Debian, Ubuntu
  {
    code: "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", // Fedora
    vars: "/usr/share/edk2/aarch64/vars-template-pflash.raw",
  },
  { code: "/usr/share/edk2/aarch64/QEMU_CODE.fd", vars: "/usr/share/edk2/aarch64/QEMU_VARS.fd" },
  { code: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd" }, // Debian's unpadded build
  { code: "/usr/share/edk2-armvirt/aarch64/QEMU_CODE.fd" }, // Arch
];

/** Features that need a signed kernel or SMM, which our direct-boot VMs do not have. */
const UNWANTED_FEATURES = ["secure-boot", "enrolled-keys", "requires-smm", "amd-sev"];

export interface DescriptorFile {
  /** File name (e.g. `60-edk2-aarch64.json`); descriptors are ordered by it. */
  name: string;
  path: string;
  /** The parsed JSON; invalid descriptors are skipped, as QEMU's own tools do. */
  content: unknown;
}

/**
 * Picks the firmware for `arch` on the `virt` machine: the first suitable descriptor by
 * file name (a file in /etc overrides one of the same name in /usr/share), else the first
 * well-known path that exists.
 */
export function chooseFirmware(
  arch: VmArch,
  descriptors: readonly DescriptorFile[],
  exists: (path: string) => boolean,
): FirmwareChoice | undefined {
  const byName = new Map<string, DescriptorFile>();
  for (const file of descriptors) if (!byName.has(file.name)) byName.set(file.name, file);
  const ordered = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const file of ordered) {
    const parsed = FirmwareDescriptorSchema.safeParse(file.content);
    if (!parsed.success) continue;
    const d = parsed.data;
    const executable = d.mapping.executable;
    if (
      !d["interface-types"].includes("uefi") || d.mapping.device !== "flash" ||
      executable === undefined || executable.format !== "raw" ||
      !d.targets.some((t) => t.architecture === arch && t.machines.some(machineMatchesVirt)) ||
      d.features.some((f) => UNWANTED_FEATURES.includes(f)) || !exists(executable.filename)
    ) continue;
    const vars = d.mapping["nvram-template"];
    return {
      code: executable.filename,
      ...(vars && exists(vars.filename) ? { varsTemplate: vars.filename } : {}),
      source: file.path,
    };
  }
  if (arch !== "aarch64") return undefined;
  for (const known of WELL_KNOWN_AARCH64) {
    if (!exists(known.code)) continue;
    return {
      code: known.code,
      ...(known.vars && exists(known.vars) ? { varsTemplate: known.vars } : {}),
      source: "well-known path",
    };
  }
  return undefined;
}

/** Descriptor machine patterns are globs such as `virt-*`. */
function machineMatchesVirt(pattern: string): boolean {
  const re = new RegExp(
    "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") +
      "$",
  );
  return re.test("virt") || re.test("virt-7.2");
}

/**
 * Bytes of zeros to append so a flash image fills its 64 MiB device.
 * @throws {RangeError} for an image larger than the device.
 */
export function pflashPadding(size: number): number {
  if (size > PFLASH_SIZE) {
    throw new RangeError(`A firmware image of ${size} bytes does not fit a 64 MiB flash device`);
  }
  return PFLASH_SIZE - size;
}
