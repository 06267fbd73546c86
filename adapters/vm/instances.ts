/**
 * `fleet vm provision | list | destroy`: one directory per VM holding its overlay disk, seed,
 * firmware copies, key, console log and `vm.json`; the VM runs as a libvirt domain where a
 * libvirt daemon answers, else as a qemu process of its own.
 */
import {
  type Accel,
  archProfiles,
  domainName,
  domainXml,
  type ImageRecipe,
  qemuCommand,
  seedFiles,
  sshArgs,
  USER_NET_GUEST_IP,
  validateVmName,
  type VmArch,
  VmBootError,
  type VmDriver,
  VmHostError,
  type VmSshAccess,
  type VmState,
  VmStateSchema,
  VmUsageError,
} from "../../vm/mod.ts";
import { resolve } from "node:path";
import type { Logger } from "../logger.ts";
import { freePort } from "../process.ts";
import { type BuiltImage, findImage } from "./image_build.ts";
import { detectAccel } from "./accel_probe.ts";
import { discoverFirmware, preparePflash } from "./firmware_files.ts";
import { writeSeedImage } from "./seed_image.ts";
import { Libvirt, libvirtUri } from "./libvirt.ts";
import { QmpClient } from "./qmp.ts";
import { exists, findTool, mustRun, runTool, tail } from "./tools.ts";

/** Where VMs live unless --dir says otherwise: `$XDG_DATA_HOME/fleet/vms`. */
export function defaultVmsDir(): string {
  const data = Deno.env.get("XDG_DATA_HOME") ??
    `${Deno.env.get("HOME") ?? "/root"}/.local/share`;
  return `${data}/fleet/vms`;
}

export interface ProvisionOptions {
  name: string;
  arch: VmArch;
  recipe: ImageRecipe;
  cacheDir: string;
  vmsDir: string;
  memoryMb: number;
  cpus: number;
  user: string;
  /** A private key whose `.pub` sits beside it; a new ed25519 key is made when absent. */
  sshKey?: string;
  /** Force an accelerator instead of detecting one. */
  accel?: Accel;
  /** Force a driver; by default libvirt when its daemon answers, else qemu directly. */
  driver?: VmDriver;
  timeoutMs: number;
  log: Logger;
}

/** What provisioning hands on: the enroll step logs in with `ssh`. */
export interface ProvisionedVm {
  state: VmState;
  ssh: VmSshAccess;
  bootSeconds: number;
}

/**
 * Creates and starts the VM and waits until SSH with its key works and cloud-init is done.
 * @throws {VmUsageError} for a taken name, {VmHostError} for a missing image or tool,
 *   {VmBootError} when qemu fails or the guest never answers (the VM is left for inspection).
 */
export async function provisionVm(options: ProvisionOptions): Promise<ProvisionedVm> {
  const { log } = options;
  const name = validateVmName(options.name);
  const libvirt = await chooseLibvirt(options.driver, log);
  const image = await findImage(options.cacheDir, options.recipe);
  if (image === undefined) {
    throw new VmHostError(
      `No ${options.arch} ${options.recipe.suite} base image in ${options.cacheDir}: build it first with ` +
        `'sudo fleet vm image build --arch ${options.arch} --suite ${options.recipe.suite}'`,
    );
  }
  // Absolute: qemu changes to / when it goes to the background.
  const dir = resolve(options.vmsDir, name);
  if (await exists(`${dir}/vm.json`)) {
    throw new VmUsageError(
      `A VM named "${name}" already exists in ${options.vmsDir}: remove it with 'fleet vm destroy --name ${name}'`,
    );
  }
  if (await exists(dir) && (await Array.fromAsync(Deno.readDir(dir))).length > 0) {
    throw new VmUsageError(`${dir} exists and is not a Fleet VM: choose another --name or --dir`);
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  let state: VmState;
  try {
    state = await prepareAndStart(options, name, dir, image, libvirt);
  } catch (error) {
    // Nothing runs yet: leave no half-made VM behind to block the name.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  const started = Date.now();
  log.info("VM started; waiting for SSH", {
    name,
    port: state.ssh.address.port,
    ...(state.driver.kind === "qemu"
      ? { pid: await readPid(state.driver.pidFile) }
      : { domain: state.driver.domain, libvirt: state.driver.uri }),
  });
  await waitForSsh(state, options.timeoutMs, log);
  return { state, ssh: state.ssh, bootSeconds: (Date.now() - started) / 1000 };
}

/** Key, overlay, seed, firmware, accelerator, then the VM started; its state. */
async function prepareAndStart(
  options: ProvisionOptions,
  name: string,
  dir: string,
  image: BuiltImage,
  libvirt: Libvirt | undefined,
): Promise<VmState> {
  const { log } = options;
  const bootFail = (what: string) => (reason: string) => new VmBootError(`${what}: ${reason}`);

  const identityFile = options.sshKey ?? `${dir}/id_ed25519`;
  if (options.sshKey === undefined) {
    await mustRun("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `fleet-vm-${name}`,
      "-f",
      identityFile,
    ], bootFail("Cannot make the VM's SSH key"));
  }
  let publicKey: string;
  try {
    publicKey = await Deno.readTextFile(`${identityFile}.pub`);
  } catch {
    throw new VmUsageError(
      `--ssh-key ${identityFile}: its public key ${identityFile}.pub is missing`,
    );
  }

  const imageDir = await Deno.realPath(image.dir);
  const disk = `${dir}/overlay.qcow2`;
  await mustRun("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "qcow2",
    "-b",
    `${imageDir}/${image.manifest.disk}`,
    disk,
  ], bootFail("Cannot create the VM's disk"));
  const seed = `${dir}/seed.img`;
  await writeSeedImage(
    seed,
    seedFiles({
      hostname: name,
      instanceId: `fleet-${name}-${crypto.randomUUID().slice(0, 8)}`,
      user: options.user,
      sshPublicKey: publicKey,
    }),
  );

  let firmware: { code: string; vars: string } | undefined;
  if (options.arch === "aarch64") {
    const choice = await discoverFirmware("aarch64");
    log.info("UEFI firmware", {
      code: choice.code,
      vars: choice.varsTemplate ?? "(empty)",
      from: choice.source,
    });
    firmware = await preparePflash(choice, dir);
  }
  const accel = options.accel === undefined
    ? await detectAccel(options.arch)
    : { accel: options.accel, why: "--accel" };
  log.info(`Accelerator: ${accel.accel} (${accel.why})`);

  const sshPort = freePort();
  const access: VmSshAccess = {
    address: { user: options.user, host: "127.0.0.1", port: sshPort },
    identityFile: await Deno.realPath(identityFile),
    knownHostsFile: `${dir}/known_hosts`,
  };
  const spec = {
    name,
    arch: options.arch,
    accel: accel.accel,
    memoryMb: options.memoryMb,
    cpus: options.cpus,
    disk,
    seed,
    boot: {
      kernel: `${imageDir}/${image.manifest.kernel}`,
      initrd: `${imageDir}/${image.manifest.initrd}`,
      root: image.manifest.rootDevice,
    },
    ...(firmware ? { firmware } : {}),
    sshPort,
    consoleLog: `${dir}/console.log`,
    pidFile: `${dir}/qemu.pid`,
    qmpSocket: `${dir}/qmp.sock`,
  };
  const base = {
    name,
    arch: options.arch,
    accel: accel.accel,
    memoryMb: options.memoryMb,
    cpus: options.cpus,
    image: { key: image.manifest.key, dir: imageDir },
    ssh: access,
    guestIp: USER_NET_GUEST_IP,
    consoleLog: spec.consoleLog,
    createdAt: new Date().toISOString(),
  };
  if (libvirt) {
    const domain = domainName(name);
    if (await libvirt.state(domain) !== undefined) {
      throw new VmUsageError(
        `libvirt at ${libvirt.uri} already has a domain named ${domain} (a VM of another --dir?): ` +
          `choose another --name, or remove it with 'virsh undefine ${domain}'`,
      );
    }
    const xmlFile = `${dir}/domain.xml`;
    const xml = domainXml({
      ...spec,
      emulator: findTool(archProfiles[options.arch].qemuSystem),
      runAs: { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 },
    });
    await Deno.writeTextFile(xmlFile, xml);
    const state: VmState = {
      ...base,
      driver: { kind: "libvirt", uri: libvirt.uri, domain, xmlFile },
    };
    await writeState(dir, state);
    await libvirt.defineAndStart(domain, xmlFile);
    return state;
  }
  const command = qemuCommand(spec);
  const state: VmState = {
    ...base,
    driver: {
      kind: "qemu",
      pidFile: spec.pidFile,
      qmpSocket: spec.qmpSocket,
      command: [command.program, ...command.args],
    },
  };
  await writeState(dir, state);
  // -daemonize: qemu returns once the VM runs, or with the reason it cannot start.
  const start = await runTool(command.program, command.args);
  if (start.code !== 0) {
    throw new VmBootError(
      `qemu could not start VM "${name}" (exit code ${start.code}): ${tail(start.stderr)}`,
    );
  }
  return state;
}

/** The libvirt daemon to run the VM on, or undefined for qemu directly; says which and why. */
async function chooseLibvirt(
  driver: VmDriver | undefined,
  log: Logger,
): Promise<Libvirt | undefined> {
  if (driver === "qemu") {
    log.info("Driver: qemu started directly (--driver qemu)");
    return undefined;
  }
  const found = await Libvirt.connect(libvirtUri());
  if (found instanceof Libvirt) {
    log.info(`Driver: libvirt at ${found.uri}${driver ? " (--driver libvirt)" : ""}`);
    return found;
  }
  if (driver === "libvirt") {
    throw new VmHostError(
      `--driver libvirt: ${found.unavailable}; start libvirtd, set LIBVIRT_DEFAULT_URI, or use --driver qemu`,
    );
  }
  log.info(`Driver: qemu started directly (${found.unavailable})`);
  return undefined;
}

async function writeState(dir: string, state: VmState): Promise<void> {
  await Deno.writeTextFile(`${dir}/vm.json`, JSON.stringify(state, null, 2) + "\n");
}

/** Polls until the guest answers SSH and cloud-init is done; fails early when qemu is gone. */
async function waitForSsh(state: VmState, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (!(await isRunning(state))) {
      throw new VmBootError(
        `VM "${state.name}" stopped while booting; its console log ${state.consoleLog} ends: ${await consoleTail(
          state,
        )}`,
      );
    }
    // qemu's port forward accepts at once even before the guest listens; the SSH banner
    // shows the guest's sshd is really there.
    if (await sshBanner(state.ssh.address.port)) {
      // Logged in is not settled: cloud-init's later stages restart sshd (ssh_pwauth) and
      // may still be writing config, so wait for it too (exit 0 done, 1 finished with errors).
      const result = await runTool("ssh", sshArgs(state.ssh, ["cloud-init", "status", "--wait"]));
      if (result.code === 0) return;
      if (result.code === 1) {
        log.warn("cloud-init finished with errors; see /var/log/cloud-init.log in the VM", {
          status: tail(result.stdout, 1),
        });
        return;
      }
      last = tail(result.stderr, 2);
      log.debug("SSH not ready yet", { reason: last });
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  throw new VmBootError(
    `VM "${state.name}" did not answer SSH on 127.0.0.1:${state.ssh.address.port} within ${
      timeoutMs / 1000
    } s` +
      `${last ? ` (last: ${last})` : ""}; console log ${state.consoleLog} ends: ${await consoleTail(
        state,
      )}. ` +
      `Remove it with 'fleet vm destroy --name ${state.name}'`,
  );
}

async function sshBanner(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), 5000);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    return n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("SSH-");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // already closed by the timer
    }
  }
}

async function consoleTail(state: VmState): Promise<string> {
  try {
    return tail((await Deno.readTextFile(state.consoleLog)).replace(/\r/g, ""), 3) || "(empty)";
  } catch {
    return "(no console log)";
  }
}

async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const pid = Number((await Deno.readTextFile(pidFile)).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when the VM runs: its qemu is alive (not a reused pid), or its domain is running. */
export async function isRunning(state: VmState): Promise<boolean> {
  const driver = state.driver;
  if (driver.kind === "libvirt") {
    const libvirt = await Libvirt.connect(driver.uri);
    return libvirt instanceof Libvirt && await libvirt.state(driver.domain) === "running";
  }
  const pid = await readPid(driver.pidFile);
  if (pid === undefined) return false;
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes(driver.pidFile);
  } catch {
    return false;
  }
}

/**
 * Power-cycles a running VM, as a field engineer would a device that hangs: `system_reset`
 * over its QMP socket (qemu started directly), or `virsh reset` (a libvirt domain; libvirt
 * sends the same command). The guest restarts at once; nothing is shut down first.
 * @throws {VmHostError} when the VM is not running or its QMP socket or daemon does not answer.
 */
export async function resetVm(state: VmState): Promise<void> {
  if (!(await isRunning(state))) {
    throw new VmHostError(`VM "${state.name}" is not running: there is nothing to reset`);
  }
  const driver = state.driver;
  if (driver.kind === "libvirt") {
    const libvirt = await Libvirt.connect(driver.uri);
    if (!(libvirt instanceof Libvirt)) {
      throw new VmHostError(`Cannot reset VM "${state.name}": ${libvirt.unavailable}`);
    }
    await libvirt.reset(driver.domain);
    return;
  }
  await using qmp = await QmpClient.connect(driver.qmpSocket);
  await qmp.systemReset();
}

/** Every VM in `vmsDir` with a readable `vm.json`, by name. */
export async function listVms(vmsDir: string): Promise<{ state: VmState; running: boolean }[]> {
  const vms: { state: VmState; running: boolean }[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(vmsDir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const state = await readState(`${vmsDir}/${entry.name}`);
    if (state) vms.push({ state, running: await isRunning(state) });
  }
  return vms;
}

async function readState(dir: string): Promise<VmState | undefined> {
  try {
    return VmStateSchema.parse(JSON.parse(await Deno.readTextFile(`${dir}/vm.json`)));
  } catch {
    return undefined;
  }
}

/**
 * Stops the VM and removes its directory: a qemu process gets SIGTERM, then SIGKILL after
 * 10 s; a libvirt domain is stopped and undefined.
 * @returns false when there is no such VM.
 * @throws {VmHostError} when the VM's libvirt daemon does not answer (nothing is removed).
 */
export async function destroyVm(vmsDir: string, name: string, log: Logger): Promise<boolean> {
  const dir = `${vmsDir}/${validateVmName(name)}`;
  const state = await readState(dir);
  if (state === undefined) return false;
  const driver = state.driver;
  if (driver.kind === "libvirt") {
    const libvirt = await Libvirt.connect(driver.uri);
    if (!(libvirt instanceof Libvirt)) {
      throw new VmHostError(
        `VM "${name}" is libvirt domain ${driver.domain}, but ${libvirt.unavailable}; ` +
          `start the daemon and try again`,
      );
    }
    await libvirt.remove(driver.domain);
    log.info("VM stopped and its domain undefined", { name, domain: driver.domain });
  } else {
    const pid = await readPid(driver.pidFile);
    if (pid !== undefined && await isRunning(state)) {
      Deno.kill(pid, "SIGTERM");
      const deadline = Date.now() + 10_000;
      while (await isRunning(state) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      if (await isRunning(state)) Deno.kill(pid, "SIGKILL");
      log.info("VM stopped", { name, pid });
    }
  }
  await Deno.remove(dir, { recursive: true });
  return true;
}

/** Runs a command in the VM over SSH (for checks and for the enroll step's own use). */
export async function sshRun(
  access: VmSshAccess,
  command: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await runTool("ssh", sshArgs(access, command));
}
