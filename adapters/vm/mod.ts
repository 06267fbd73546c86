/**
 * The VM tooling's I/O: image builds (debootstrap), seeds, firmware files, the KVM probe and
 * VM instances (qemu directly or a libvirt domain). The decisions they carry out are pure, in `vm/`.
 * @module
 */
export {
  buildImage,
  type BuiltImage,
  defaultImageCacheDir,
  findImage,
  type SudoInvoker,
  sudoInvoker,
} from "./image_build.ts";
export {
  defaultVmsDir,
  destroyVm,
  isRunning,
  listVms,
  type ProvisionedVm,
  type ProvisionOptions,
  provisionVm,
  resetVm,
  sshRun,
} from "./instances.ts";
export { QmpClient, QmpError, type QmpEvent, type QmpGreeting } from "./qmp.ts";
export { detectAccel } from "./accel_probe.ts";
export { Libvirt, libvirtUri, SYSTEM_URI } from "./libvirt.ts";
export { discoverFirmware, preparePflash, readDescriptors } from "./firmware_files.ts";
export { writeSeedImage } from "./seed_image.ts";
export { findTool, TOOL_PACKAGES } from "./tools.ts";
