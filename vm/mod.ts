/**
 * Fleet VMs as pure decisions: qemu command lines, the cloud-init seed, firmware choice,
 * the base image recipe and disk layout. The I/O that carries them out is in `adapters/vm/`.
 * @module
 */
export * from "./arch.ts";
export * from "./errors.ts";
export * from "./qemu_args.ts";
export * from "./seed.ts";
export * from "./firmware.ts";
export * from "./disk_layout.ts";
export * from "./accel.ts";
export * from "./recipe.ts";
export * from "./instance.ts";
export * from "./domain_xml.ts";
