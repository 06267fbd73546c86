/**
 * `fleet vm image build`: a Debian base image made from Debian's packages with debootstrap
 * (no cloud image needs downloading), cached under `<cache>/<arch>-<suite>-<recipe hash>/`,
 * the cache being `~/.cache/fleet/vm-images` unless `--cache-dir` says otherwise.
 *
 * Layout: an MBR disk with one ext4 root partition (made with `mkfs.ext4 -d`, so no loop
 * device or mount is needed), converted to qcow2; the image's kernel and initrd sit beside
 * it and VMs boot them directly (`-kernel`/`-initrd`), behind UEFI firmware on aarch64.
 */
import {
  archProfiles,
  hostArch,
  imageKey,
  type ImageManifest,
  ImageManifestSchema,
  type ImageRecipe,
  masterBootRecord,
  ROOT_DEVICE,
  ROOT_LABEL,
  ROOT_OFFSET,
  VmHostError,
  VmImageBuildError,
} from "../../vm/mod.ts";
import { dirname, resolve } from "node:path";
import type { Logger } from "../logger.ts";
import { fleetCacheDir } from "../cache_dir.ts";
import { exists, findTool, mustRun, runTool, tail } from "./tools.ts";

/**
 * Where base images are built and looked for unless told otherwise: `vm-images` in
 * {@linkcode fleetCacheDir} — under `sudo`, in the invoking user's (`~/.cache/fleet`), so the
 * image `sudo fleet vm image build` makes is the one their `fleet vm provision` finds.
 */
export function defaultImageCacheDir(): string {
  const invoker = sudoInvoker();
  return invoker ? `${invoker.home}/.cache/fleet/vm-images` : `${fleetCacheDir()}/vm-images`;
}

/** Who ran `sudo`, when this process is root because of it: their ids and home. */
export interface SudoInvoker {
  uid: number;
  gid: number;
  home: string;
}

/** The user behind `sudo` (from SUDO_USER/SUDO_UID/SUDO_GID and /etc/passwd), if any. */
export function sudoInvoker(): SudoInvoker | undefined {
  const user = Deno.env.get("SUDO_USER");
  const uid = Number(Deno.env.get("SUDO_UID"));
  const gid = Number(Deno.env.get("SUDO_GID"));
  if (Deno.uid() !== 0 || !user || !(uid > 0) || !Number.isInteger(gid)) return undefined;
  let passwd = "";
  try {
    passwd = Deno.readTextFileSync("/etc/passwd");
  } catch {
    return undefined;
  }
  const home = passwd.split("\n").map((line) => line.split(":")).find((f) => f[0] === user)?.[5];
  return home ? { uid, gid, home } : undefined;
}

export interface BuiltImage {
  dir: string;
  manifest: ImageManifest;
  /** True when the image came from the cache. */
  cached: boolean;
}

/** The cached image of `recipe`, or undefined when it was never built. */
export async function findImage(
  cacheDir: string,
  recipe: ImageRecipe,
): Promise<BuiltImage | undefined> {
  const dir = `${cacheDir}/${imageKey(recipe)}`;
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/image.json`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return { dir, manifest: ImageManifestSchema.parse(JSON.parse(text)), cached: true };
}

/**
 * Builds the image of `recipe` unless it is cached.
 * @param options.owner who gets the folders the build creates (the image's and any missing
 *   parents), e.g. the {@linkcode sudoInvoker} whose cache it builds into; root otherwise.
 * @throws {VmHostError} when not root or a tool is missing; {VmImageBuildError} naming the step.
 */
export async function buildImage(
  cacheDir: string,
  recipe: ImageRecipe,
  log: Logger,
  options: { owner?: { uid: number; gid: number } } = {},
): Promise<BuiltImage> {
  const found = await findImage(cacheDir, recipe);
  if (found) return found;
  if (Deno.uid() !== 0) {
    throw new VmHostError(
      "Building a VM image needs root (debootstrap creates device nodes and root-owned files): " +
        "run it with sudo; provisioning VMs from the built image does not need root",
    );
  }
  const profile = archProfiles[recipe.arch];
  const foreign = recipe.arch !== hostArch();
  for (const tool of ["debootstrap", "mkfs.ext4", "qemu-img", "chroot"]) findTool(tool);
  if (foreign) await enableForeignBinaries(recipe.arch);

  const key = imageKey(recipe);
  const started = Date.now();
  const created = await missingFolders(cacheDir);
  await Deno.mkdir(cacheDir, { recursive: true });
  if (options.owner) {
    for (const dir of created) await Deno.chown(dir, options.owner.uid, options.owner.gid);
  }
  // Absolute, because unmounting compares it with the absolute paths in /proc/mounts.
  const work = resolve(cacheDir, `${key}.build-${Deno.pid}`);
  const rootfs = `${work}/rootfs`;
  await Deno.mkdir(work, { recursive: true });
  try {
    log.info("Running debootstrap (several minutes the first time)", {
      arch: recipe.arch,
      suite: recipe.suite,
      mirror: recipe.mirror,
      foreign,
    });
    const step = (name: string) => (reason: string) => new VmImageBuildError(name, reason);
    // debootstrap lays down only the minimal base; apt then installs the rest, because
    // debootstrap's own --include ordering fails on packages such as python3-cryptography.
    await mustRun("debootstrap", [
      "--variant=minbase",
      `--arch=${profile.debianArch}`,
      ...(foreign ? ["--foreign"] : []),
      recipe.suite,
      rootfs,
      recipe.mirror,
    ], step("debootstrap"));
    if (foreign) {
      log.info(
        "Running debootstrap's second stage under qemu-user (slow: every binary is emulated)",
      );
      await mustRun(
        "chroot",
        [rootfs, "/debootstrap/debootstrap", "--second-stage"],
        step("debootstrap second stage"),
      );
    }
    await mustUnmountUnder(rootfs);
    // The recipe's files go in first: the kernel package builds the initrd from fstab (no
    // root entry there means no fsck in it), and apt keeps them (--force-confold).
    for (const [path, content] of Object.entries(recipe.files)) {
      await Deno.mkdir(`${rootfs}${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
      await Deno.writeTextFile(`${rootfs}${path}`, content);
    }
    log.info("Installing packages with apt", { count: recipe.packages.length });
    await installPackages(rootfs, recipe.packages, step("apt-get install"));

    log.info("Configuring the image");
    for (const [path, target] of Object.entries(recipe.links)) {
      await Deno.mkdir(`${rootfs}${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
      await Deno.remove(`${rootfs}${path}`).catch(() => {});
      await Deno.symlink(target, `${rootfs}${path}`);
    }
    // Every VM must get its own identity at first boot: sshd host keys (cloud-init makes
    // them) and machine-id (systemd makes it when the file is empty).
    for await (const entry of Deno.readDir(`${rootfs}/etc/ssh`)) {
      if (entry.name.startsWith("ssh_host_")) await Deno.remove(`${rootfs}/etc/ssh/${entry.name}`);
    }
    await Deno.writeTextFile(`${rootfs}/etc/machine-id`, "");
    await Deno.remove(`${rootfs}/var/lib/dbus/machine-id`).catch(() => {});
    await Deno.remove(`${rootfs}/debootstrap`, { recursive: true }).catch(() => {});

    const boot = await kernelFiles(rootfs);
    await Deno.copyFile(`${rootfs}/boot/${boot.kernel}`, `${work}/vmlinuz`);
    await Deno.copyFile(`${rootfs}/boot/${boot.initrd}`, `${work}/initrd.img`);

    log.info("Writing the disk image", { bytes: recipe.diskBytes });
    const raw = `${work}/disk.raw`;
    const file = await Deno.open(raw, { write: true, create: true, truncate: true });
    await file.truncate(recipe.diskBytes);
    file.close();
    // The file system goes straight into the partition's place in the disk file.
    await mustRun("mkfs.ext4", [
      "-q",
      "-F",
      "-L",
      ROOT_LABEL,
      "-d",
      rootfs,
      "-E",
      `offset=${ROOT_OFFSET}`,
      raw,
      `${(recipe.diskBytes - ROOT_OFFSET) / 1024}k`,
    ], step("root file system"));
    const disk = await Deno.open(raw, { write: true });
    const mbr = masterBootRecord(recipe.diskBytes, parseInt(key.slice(-8), 16));
    for (let offset = 0; offset < mbr.length;) offset += await disk.write(mbr.subarray(offset));
    disk.close();
    await mustRun(
      "qemu-img",
      ["convert", "-f", "raw", "-O", "qcow2", raw, `${work}/disk.qcow2`],
      step("qcow2"),
    );
    await Deno.remove(raw);
    await Deno.remove(rootfs, { recursive: true });

    const manifest: ImageManifest = {
      key,
      arch: recipe.arch,
      suite: recipe.suite,
      disk: "disk.qcow2",
      kernel: "vmlinuz",
      initrd: "initrd.img",
      kernelVersion: boot.version,
      rootDevice: ROOT_DEVICE,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
    };
    await Deno.writeTextFile(`${work}/image.json`, JSON.stringify(manifest, null, 2) + "\n");
    // Provisioning runs as any user: the base image is read-only input to their overlays.
    for (const name of ["disk.qcow2", "vmlinuz", "initrd.img", "image.json"]) {
      await Deno.chmod(`${work}/${name}`, 0o644);
    }
    await Deno.chmod(work, 0o755);
    if (options.owner) {
      const { uid, gid } = options.owner;
      for (const name of ["disk.qcow2", "vmlinuz", "initrd.img", "image.json", ""]) {
        await Deno.chown(`${work}/${name}`, uid, gid);
      }
    }
    const dir = `${cacheDir}/${key}`;
    try {
      await Deno.rename(work, dir);
    } catch (error) {
      // Another build of the same recipe finished first: keep that one.
      const other = await findImage(cacheDir, recipe);
      if (other === undefined) throw error;
      await Deno.remove(work, { recursive: true });
      return other;
    }
    log.info("Image built", { dir, seconds: manifest.buildSeconds });
    return { dir, manifest, cached: false };
  } catch (error) {
    if (await unmountUnder(rootfs).catch(() => 1) > 0) {
      // Never delete recursively through a mounted /proc or /sys.
      throw new VmImageBuildError(
        "clean-up",
        `file systems are still mounted under ${rootfs}: unmount them and delete ${work}`,
        { cause: error },
      );
    }
    // debootstrap's own log says which package failed; keep it past the clean-up.
    const kept = `${cacheDir}/${key}.failed.log`;
    const saved = await Deno.copyFile(`${rootfs}/debootstrap/debootstrap.log`, kept)
      .then(() => true, () => false);
    await Deno.remove(work, { recursive: true }).catch(() => {});
    if (saved && error instanceof VmImageBuildError) {
      throw new VmImageBuildError(error.step, `${error.reason} (debootstrap's log: ${kept})`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** `path` and those of its parents that do not exist yet, deepest first. */
async function missingFolders(path: string): Promise<string[]> {
  const missing: string[] = [];
  for (let dir = resolve(path); dir !== "/"; dir = dirname(dir)) {
    if (await exists(dir)) break;
    missing.push(dir);
  }
  return missing;
}

/**
 * apt-get install in the image, with /proc and /sys mounted for the maintainer scripts and
 * a policy-rc.d that keeps them from starting services (sshd) inside the chroot.
 */
async function installPackages(
  rootfs: string,
  packages: readonly string[],
  fail: (reason: string) => Error,
): Promise<void> {
  const policy = `${rootfs}/usr/sbin/policy-rc.d`;
  await Deno.writeTextFile(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  await mustRun("mount", ["-t", "proc", "proc", `${rootfs}/proc`], fail);
  await mustRun("mount", ["-t", "sysfs", "sysfs", `${rootfs}/sys`], fail);
  try {
    const env = { DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C.UTF-8" };
    await mustRun("chroot", [rootfs, "apt-get", "update", "-q"], fail, { env });
    await mustRun(
      "chroot",
      [
        rootfs,
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        ...packages,
      ],
      fail,
      { env },
    );
    await mustRun("chroot", [rootfs, "apt-get", "clean"], fail, { env });
  } finally {
    await mustUnmountUnder(rootfs);
    await Deno.remove(policy);
  }
}

/** The newest kernel and its initrd in the image's /boot. */
async function kernelFiles(
  rootfs: string,
): Promise<{ kernel: string; initrd: string; version: string }> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(`${rootfs}/boot`)) {
    const match = /^vmlinuz-(.+)$/.exec(entry.name);
    if (match?.[1]) versions.push(match[1]);
  }
  versions.sort();
  const version = versions.at(-1);
  if (version === undefined) {
    throw new VmImageBuildError(
      "kernel",
      `no /boot/vmlinuz-* in the image (was the kernel package installed?)`,
    );
  }
  if (!(await exists(`${rootfs}/boot/initrd.img-${version}`))) {
    throw new VmImageBuildError("kernel", `no /boot/initrd.img-${version} beside the kernel`);
  }
  return { kernel: `vmlinuz-${version}`, initrd: `initrd.img-${version}`, version };
}

/** debootstrap mounts /proc and /sys in the target; a failed run can leave them mounted. */
async function mustUnmountUnder(root: string): Promise<void> {
  if (await unmountUnder(root) > 0) {
    throw new VmImageBuildError("unmount", `cannot unmount /proc or /sys under ${root}`);
  }
}

async function unmountUnder(root: string): Promise<number> {
  const mountsUnder = async () =>
    (await Deno.readTextFile("/proc/mounts")).split("\n")
      .map((line) => line.split(" ")[1] ?? "")
      .filter((point) => point === root || point.startsWith(root + "/"))
      .sort()
      .reverse();
  for (const point of await mountsUnder()) await runTool("umount", ["-l", point]);
  return (await mountsUnder()).length;
}

/**
 * Lets the kernel run the foreign architecture's binaries through qemu-user, which
 * debootstrap's second stage needs: mounts binfmt_misc and registers Debian's
 * qemu-user-static entry (its `F` flag keeps the emulator usable inside the chroot).
 */
async function enableForeignBinaries(arch: ImageRecipe["arch"]): Promise<void> {
  const root = "/proc/sys/fs/binfmt_misc";
  if (!(await exists(`${root}/register`))) {
    const mounted = await runTool("mount", ["-t", "binfmt_misc", "binfmt_misc", root]);
    if (mounted.code !== 0) {
      throw new VmHostError(
        `Cannot mount binfmt_misc to run ${arch} binaries: ${tail(mounted.stderr)}`,
      );
    }
  }
  const entry = `${root}/qemu-${arch}`;
  if (await exists(entry)) {
    // Without the F flag the kernel looks for the emulator inside the chroot, where it is not.
    if (/^flags: .*F/m.test(await Deno.readTextFile(entry))) return;
    throw new VmHostError(
      `binfmt_misc has a qemu-${arch} entry without the F flag (qemu-user, not qemu-user-static?): ` +
        `remove it with 'echo -1 > ${entry}' and build again`,
    );
  }
  const conf = `/usr/lib/binfmt.d/qemu-${arch}.conf`;
  let line: string;
  try {
    line = (await Deno.readTextFile(conf)).trim();
  } catch {
    throw new VmHostError(
      `Building a ${arch} image on this ${hostArch()} machine needs qemu-user-static (${conf} is missing)`,
    );
  }
  await Deno.writeTextFile(`${root}/register`, line);
}
