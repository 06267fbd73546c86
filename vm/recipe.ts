/**
 * What goes into a base image, as data: the suite, the packages and the files written into
 * it. Its hash is the cache key, so changing the recipe builds a new image and an unchanged
 * one is reused at once.
 */
import { createHash } from "node:crypto";
import * as z from "zod";
import { archProfiles, type VmArch, VmArches } from "./arch.ts";
import { ROOT_LABEL } from "./disk_layout.ts";

/** Bump when the build steps change in a way the recipe data does not show. */
export const BUILD_STEPS_VERSION = 3;

export const DEFAULT_SUITE = "bookworm";
export const DEFAULT_MIRROR = "http://deb.debian.org/debian";
/** The raw disk's size; the qcow2 stores only what is written. */
export const DISK_BYTES = 4 * 1024 * 1024 * 1024;

export interface ImageRecipe {
  arch: VmArch;
  suite: string;
  mirror: string;
  /** Installed with apt over debootstrap's minbase variant (which has only Essential and apt). */
  packages: string[];
  /** Files written into the root file system before apt runs (initramfs reads fstab), path → content. */
  files: Record<string, string>;
  /** Symbolic links made after the files, path → target (how systemd units are enabled). */
  links: Record<string, string>;
  diskBytes: number;
  buildStepsVersion: number;
}

const SUITE = /^[a-z][a-z0-9-]*$/;

/** @throws {RangeError} for a suite name that is not a Debian code name such as "bookworm". */
export function imageRecipe(
  arch: VmArch,
  suite = DEFAULT_SUITE,
  mirror = DEFAULT_MIRROR,
): ImageRecipe {
  if (!SUITE.test(suite)) {
    throw new RangeError(`Invalid suite "${suite}": use a code name such as bookworm`);
  }
  return {
    arch,
    suite,
    mirror,
    packages: [
      archProfiles[arch].kernelPackage,
      "systemd",
      "systemd-sysv",
      "udev",
      "dbus",
      "openssh-server",
      "cloud-init",
      "sudo",
      "ca-certificates",
      // Not in minbase since bookworm: fsck.ext4 for boot, resize2fs for cloud-init.
      "e2fsprogs",
      // cloud-init renders its network config for ifupdown on Debian 12, as the cloud images do.
      "ifupdown",
      "isc-dhcp-client",
      "iproute2",
      "netbase",
      "procps",
      "less",
    ],
    files: {
      "/etc/fstab": `LABEL=${ROOT_LABEL} / ext4 defaults,discard,errors=remount-ro 0 1\n`,
      "/etc/hostname": "fleet-vm\n",
      "/etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
      "/etc/network/interfaces":
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
      // Only the seed disk: without this cloud-init probes cloud metadata servers first, which
      // costs minutes on a machine without them.
      "/etc/cloud/cloud.cfg.d/90-fleet.cfg":
        "datasource_list: [ NoCloud, None ]\n# The image's own locale, so cloud-init need not generate one (no locales package).\nlocale: C.UTF-8\n",
      "/etc/default/locale": "LANG=C.UTF-8\n",
      // The initrd's fsck hook probes the root device for its type, which does not exist in
      // the build chroot; without this the initrd has no fsck and / is never checked.
      "/etc/initramfs-tools/conf.d/fleet-fstype": "FSTYPE=ext4\n",
      // sshd refuses to start without host keys; cloud-init makes them, and this covers a
      // first boot where cloud-init failed, so the VM can still be reached and inspected.
      "/etc/systemd/system/fleet-ssh-hostkeys.service": [
        "[Unit]",
        "Description=Generate missing SSH host keys",
        "After=cloud-init.service",
        "Before=ssh.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/bin/ssh-keygen -A",
        "",
        "[Install]",
        "WantedBy=ssh.service",
        "",
      ].join("\n"),
      "/etc/apt/sources.list": `deb ${mirror} ${suite} main\n`,
    },
    links: {
      "/etc/systemd/system/ssh.service.wants/fleet-ssh-hostkeys.service":
        "/etc/systemd/system/fleet-ssh-hostkeys.service",
    },
    diskBytes: DISK_BYTES,
    buildStepsVersion: BUILD_STEPS_VERSION,
  };
}

/** The recipe's cache key: 12 hex digits of the SHA-256 of its canonical JSON. */
export function recipeHash(recipe: ImageRecipe): string {
  return createHash("sha256").update(canonicalJson(recipe)).digest("hex").slice(0, 12);
}

/** JSON with object keys sorted at every level, so equal recipes hash equally. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The cache directory name of a recipe's image: `<arch>-<suite>-<hash>`. */
export function imageKey(recipe: ImageRecipe): string {
  return `${recipe.arch}-${recipe.suite}-${recipeHash(recipe)}`;
}

/** `image.json` beside a built image: what provisioning needs to boot it. */
export const ImageManifestSchema = z.object({
  key: z.string(),
  arch: z.enum(VmArches),
  suite: z.string(),
  /** File names inside the image's directory. */
  disk: z.string(),
  kernel: z.string(),
  initrd: z.string(),
  kernelVersion: z.string(),
  rootDevice: z.string(),
  builtAt: z.string(),
  buildSeconds: z.number(),
});
export type ImageManifest = z.infer<typeof ImageManifestSchema>;
