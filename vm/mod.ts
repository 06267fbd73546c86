/**
 * Fleet VMs as pure decisions: qemu command lines, the cloud-init seed, firmware choice,
 * the base image recipe and disk layout. The I/O that carries them out is in `adapters/vm/`.
 * @module
 */
export { type ArchProfile, archProfiles, hostArch, type VmArch, VmArches } from "./arch.ts";
export { VmBootError, VmHostError, VmImageBuildError, VmUsageError } from "./errors.ts";
export {
  type Accel,
  Accels,
  type DirectKernel,
  kernelCommandLine,
  type PflashPair,
  qemuCommand,
  type QemuSpec,
} from "./qemu_args.ts";
export { SEED_LABEL, type SeedFiles, seedFiles, type SeedSpec } from "./seed.ts";
export {
  chooseFirmware,
  type DescriptorFile,
  FIRMWARE_DESCRIPTOR_DIRS,
  type FirmwareChoice,
  type FirmwareDescriptor,
  FirmwareDescriptorSchema,
  PFLASH_SIZE,
  pflashPadding,
  WELL_KNOWN_AARCH64,
} from "./firmware.ts";
export { masterBootRecord, ROOT_DEVICE, ROOT_LABEL, ROOT_OFFSET, SECTOR } from "./disk_layout.ts";
export {
  chooseAccel,
  kvmProbeArgs,
  kvmProbeBootSector,
  PROBE_EXIT_CODE,
  PROBE_EXIT_PORT,
  PROBE_EXIT_VALUE,
} from "./accel.ts";
export {
  BUILD_STEPS_VERSION,
  DEFAULT_MIRROR,
  DEFAULT_SUITE,
  DISK_BYTES,
  imageKey,
  type ImageManifest,
  ImageManifestSchema,
  type ImageRecipe,
  imageRecipe,
  recipeHash,
} from "./recipe.ts";
export {
  sshArgs,
  urlsFromGuest,
  USER_NET_GUEST_IP,
  USER_NET_HOST_IP,
  validateVmName,
  type VmDriver,
  VmDrivers,
  type VmSshAccess,
  VmSshAccessSchema,
  type VmState,
  VmStateSchema,
} from "./instance.ts";
export { domainName, type DomainSpec, domainXml } from "./domain_xml.ts";
