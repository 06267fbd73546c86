import assert from "node:assert/strict";
import { chooseFirmware, type DescriptorFile, PFLASH_SIZE, pflashPadding } from "./firmware.ts";

function descriptor(
  name: string,
  code: string,
  vars: string | undefined,
  options: { arch?: string; features?: string[]; machines?: string[]; dir?: string } = {},
): DescriptorFile {
  return {
    name,
    path: `${options.dir ?? "/usr/share/qemu/firmware"}/${name}`,
    content: {
      description: name,
      "interface-types": ["uefi"],
      mapping: {
        device: "flash",
        executable: { filename: code, format: "raw" },
        ...(vars ? { "nvram-template": { filename: vars, format: "raw" } } : {}),
      },
      targets: [{
        architecture: options.arch ?? "aarch64",
        machines: options.machines ?? ["virt-*"],
      }],
      features: options.features ?? ["verbose-static"],
      tags: [],
    },
  };
}

// What Debian 12's qemu-efi-aarch64 and ovmf install.
const debian = [
  descriptor("40-edk2-aarch64-secure-enrolled.json", "/AAVMF/CODE.ms.fd", "/AAVMF/VARS.ms.fd", {
    features: ["enrolled-keys", "secure-boot"],
  }),
  descriptor("50-edk2-aarch64-secure.json", "/AAVMF/CODE.secboot.fd", "/AAVMF/VARS.fd", {
    features: ["secure-boot"],
  }),
  descriptor("60-edk2-aarch64.json", "/AAVMF/CODE.fd", "/AAVMF/VARS.fd"),
  descriptor("60-edk2-x86_64.json", "/OVMF/CODE_4M.fd", "/OVMF/VARS_4M.fd", {
    arch: "x86_64",
    machines: ["pc-q35-*"],
  }),
];
const all = () => true;

Deno.test("chooseFirmware() skips Secure Boot builds: our kernels boot unsigned", () => {
  assert.deepEqual(chooseFirmware("aarch64", debian, all), {
    code: "/AAVMF/CODE.fd",
    varsTemplate: "/AAVMF/VARS.fd",
    source: "/usr/share/qemu/firmware/60-edk2-aarch64.json",
  });
});

Deno.test("chooseFirmware() takes descriptors in file-name order and the /etc one of a name first", () => {
  const override = descriptor("60-edk2-aarch64.json", "/custom/CODE.fd", undefined, {
    dir: "/etc/qemu/firmware",
  });
  const early = descriptor("10-mine.json", "/mine/CODE.fd", "/mine/VARS.fd");
  const choice = chooseFirmware("aarch64", [override, ...debian], all);
  assert.equal(choice?.code, "/custom/CODE.fd");
  assert.equal(choice?.varsTemplate, undefined);
  assert.equal(chooseFirmware("aarch64", [...debian, early], all)?.code, "/mine/CODE.fd");
});

Deno.test("chooseFirmware() skips descriptors whose files are missing, other arches and invalid JSON", () => {
  const broken: DescriptorFile = {
    name: "30-broken.json",
    path: "/x/30-broken.json",
    content: { nope: 1 },
  };
  const onlyDescribed = (p: string) => p.startsWith("/AAVMF/") || p.startsWith("/OVMF/");
  assert.equal(chooseFirmware("aarch64", [broken, debian[3]!], onlyDescribed), undefined);
  const withoutPlainCode = (p: string) => onlyDescribed(p) && p !== "/AAVMF/CODE.fd";
  assert.equal(chooseFirmware("aarch64", [broken, ...debian], withoutPlainCode), undefined);
});

Deno.test("chooseFirmware() falls back to well-known paths without descriptors", () => {
  const has = new Set(["/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"]);
  assert.deepEqual(chooseFirmware("aarch64", [], (p) => has.has(p)), {
    code: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
    source: "well-known path",
  });
  const debianPaths = new Set([
    "/usr/share/AAVMF/AAVMF_CODE.fd",
    "/usr/share/AAVMF/AAVMF_VARS.fd",
    ...has,
  ]);
  assert.equal(
    chooseFirmware("aarch64", [], (p) => debianPaths.has(p))?.varsTemplate,
    "/usr/share/AAVMF/AAVMF_VARS.fd",
  );
  assert.equal(chooseFirmware("aarch64", [], () => false), undefined);
});

Deno.test("chooseFirmware() requires a target machine pattern that matches virt", () => {
  const pcOnly = descriptor("60-x.json", "/X/CODE.fd", undefined, { machines: ["pc-q35-*"] });
  assert.equal(chooseFirmware("aarch64", [pcOnly], (p) => p === "/X/CODE.fd"), undefined);
});

Deno.test("pflashPadding() fills a 2 MiB build to 64 MiB and refuses larger images", () => {
  assert.equal(pflashPadding(2 * 1024 * 1024), PFLASH_SIZE - 2 * 1024 * 1024);
  assert.equal(pflashPadding(PFLASH_SIZE), 0);
  assert.throws(() => pflashPadding(PFLASH_SIZE + 1), RangeError);
});
