/** Finds UEFI firmware on this host and makes the VM's own 64 MiB pflash copies. */
import {
  chooseFirmware,
  type DescriptorFile,
  FIRMWARE_DESCRIPTOR_DIRS,
  type FirmwareChoice,
  PFLASH_SIZE,
  pflashPadding,
  type PflashPair,
  type VmArch,
  VmHostError,
} from "../../vm/mod.ts";

/** Reads every `*.json` descriptor from the search directories (missing directories are fine). */
export async function readDescriptors(
  dirs: readonly string[] = FIRMWARE_DESCRIPTOR_DIRS,
): Promise<DescriptorFile[]> {
  const files: DescriptorFile[] = [];
  for (const dir of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.name.endsWith(".json")) continue;
      const path = `${dir}/${entry.name}`;
      try {
        files.push({ name: entry.name, path, content: JSON.parse(await Deno.readTextFile(path)) });
      } catch {
        // An unreadable or invalid descriptor is skipped, as QEMU's own tools do.
      }
    }
  }
  return files;
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** @throws {VmHostError} when no usable firmware is installed. */
export async function discoverFirmware(
  arch: VmArch,
  dirs: readonly string[] = FIRMWARE_DESCRIPTOR_DIRS,
): Promise<FirmwareChoice> {
  const choice = chooseFirmware(arch, await readDescriptors(dirs), fileExists);
  if (choice === undefined) {
    throw new VmHostError(
      `No UEFI firmware for ${arch} VMs found (searched ${dirs.join(", ")} and the usual paths): ` +
        `install the Debian package ${arch === "aarch64" ? "qemu-efi-aarch64" : "ovmf"}`,
    );
  }
  return choice;
}

/** Copies `source` (or zeros) to `target`, padded with zeros to the flash size. */
async function writePadded(source: string | undefined, target: string): Promise<void> {
  const data = source === undefined ? new Uint8Array(0) : await Deno.readFile(source);
  const padded = new Uint8Array(data.length + pflashPadding(data.length));
  padded.set(data);
  await Deno.writeFile(target, padded);
}

/** The VM's firmware code (a padded copy) and its own writable variable store. */
export async function preparePflash(choice: FirmwareChoice, dir: string): Promise<PflashPair> {
  const pair = { code: `${dir}/efi-code.fd`, vars: `${dir}/efi-vars.fd` };
  await writePadded(choice.code, pair.code);
  await writePadded(choice.varsTemplate, pair.vars);
  const size = (await Deno.stat(pair.code)).size;
  if (size !== PFLASH_SIZE) {
    throw new VmHostError(`Firmware copy ${pair.code} is ${size} bytes, not 64 MiB`);
  }
  return pair;
}
