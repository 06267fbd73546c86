import { Command, Option } from "@commander-js/extra-typings";
import { imageRecipe, urlsFromGuest, USER_NET_HOST_IP, VmArches, VmDrivers } from "../vm/mod.ts";
import { SshTarget } from "../adapters/host/ssh_target.ts";
import {
  buildImage,
  defaultImageCacheDir,
  defaultVmsDir,
  destroyVm,
  listVms,
  provisionVm,
  sudoInvoker,
  SYSTEM_URI,
} from "../adapters/vm/mod.ts";
import { printLine } from "../adapters/output.ts";
import { renderTable } from "../cli/table.ts";
import {
  ExitCode,
  ignoreNotFoundOption,
  integerParser,
  logFormatOption,
  loggerFrom,
  logLevelOption,
} from "./_cli.ts";
import { enrollOptions, planEnroll, runEnroll } from "./_enroll.ts";

const archOption = () =>
  new Option("--arch <arch>", "guest architecture").choices(VmArches).default(
    "x86_64" as const,
  ).env("FLEET_VM_ARCH");
const suiteOption = () =>
  new Option("--suite <suite>", "Debian suite of the base image").default("bookworm").env(
    "FLEET_VM_SUITE",
  );
const cacheOption = () =>
  new Option(
    "--cache-dir <dir>",
    "where base images are built and kept (default: ~/.cache/fleet/vm-images, the invoking user's under sudo)",
  ).env("FLEET_VM_CACHE");
const dirOption = () =>
  new Option(
    "--dir <dir>",
    `where VMs keep their state, one folder each (default: ${defaultVmsDir()})`,
  )
    .env("FLEET_VM_DIR");

/** The VM's name: `provision` and `destroy` name the same VM. */
const nameOption = (description: string) =>
  new Option("--name <name>", description).makeOptionMandatory().env("FLEET_VM_NAME");

const DRIVERS =
  `A VM runs as a libvirt domain (fleet-NAME, in \`virsh list\`) when a libvirt daemon answers
at $LIBVIRT_DEFAULT_URI (default ${SYSTEM_URI}), else as a qemu process started directly;
--driver picks one. Both give the guest qemu's user-mode network (no bridge): its SSH on a
free 127.0.0.1 port, this host's loopback as ${USER_NET_HOST_IP}.`;

export function vmCommand(): Command {
  const vm = new Command("vm").description(
    "Virtual machines as fleet devices: build a Debian base image, provision, list, destroy",
  ).addHelpText("after", `\n${DRIVERS}`);

  const image = new Command("image").description("Base images for VMs");
  image.command("build")
    .description(
      "Build the Debian base image for an architecture with debootstrap (needs root; cached)",
    )
    .addOption(archOption())
    .addOption(suiteOption())
    .addOption(
      new Option("--mirror <url>", "Debian mirror").default("http://deb.debian.org/debian").env(
        "FLEET_VM_MIRROR",
      ),
    )
    .addOption(cacheOption())
    .addOption(
      new Option("--output <path>", "also copy the finished qcow2 disk here")
        .env("FLEET_VM_IMAGE_OUTPUT"),
    )
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
The image is a minimal Debian (systemd, openssh-server, cloud-init, sudo) on an MBR disk with
one ext4 partition, as qcow2; its kernel and initrd are kept beside it and VMs boot them
directly (behind UEFI firmware on aarch64). It is cached under --cache-dir by architecture,
suite and a hash of the recipe, so a second run returns at once; run with sudo, the default
cache is the invoking user's, where their \`fleet vm provision\` looks. A foreign architecture
is built through qemu-user-static (much slower).

Examples:
  sudo fleet vm image build --arch x86_64
  sudo fleet vm image build --arch aarch64 --output /srv/images/fleet-arm64.qcow2`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      const recipe = imageRecipe(flags.arch, flags.suite, flags.mirror);
      // Under sudo the default cache is the invoking user's: what is built there is theirs.
      const owner = flags.cacheDir === undefined ? sudoInvoker() : undefined;
      const cacheDir = flags.cacheDir ?? defaultImageCacheDir();
      const built = await buildImage(cacheDir, recipe, log, owner ? { owner } : {});
      const disk = `${built.dir}/${built.manifest.disk}`;
      if (flags.output) await Deno.copyFile(disk, flags.output);
      printLine(
        `${built.cached ? "cached" : "built"} ${built.manifest.key}: ${flags.output ?? disk} ` +
          `(kernel ${built.manifest.kernelVersion}, built in ${built.manifest.buildSeconds} s)`,
      );
    });
  vm.addCommand(image);

  const provision = new Command("provision")
    .description(
      "Start a VM from the base image, wait until it answers SSH, and enroll it as a fleet device",
    )
    .addOption(nameOption("VM name, also its host name (a DNS label)"))
    .addOption(archOption())
    .addOption(suiteOption())
    .addOption(
      new Option("--memory <mb>", "memory in MiB").argParser(integerParser("--memory", 256))
        .default(1024)
        .env("FLEET_VM_MEMORY"),
    )
    .addOption(
      new Option("--cpus <n>", "virtual CPUs").argParser(integerParser("--cpus", 1)).default(2)
        .env("FLEET_VM_CPUS"),
    )
    .addOption(
      new Option(
        "--ssh-key <path>",
        "private key to log in with (its .pub beside it); default: a new one",
      ).env("FLEET_VM_SSH_KEY"),
    )
    .addOption(
      new Option("--user <user>", "the user cloud-init creates, with sudo").default("fleet")
        .env("FLEET_VM_USER"),
    )
    .addOption(
      new Option("--accel <accel>", "force an accelerator (default: KVM when it works, else TCG)")
        .choices(["kvm", "tcg"] as const).env("FLEET_VM_ACCEL"),
    )
    .addOption(
      new Option("--timeout <seconds>", "how long to wait for SSH").argParser(
        integerParser("--timeout", 1),
      ).env("FLEET_VM_BOOT_TIMEOUT"),
    )
    .addOption(
      new Option(
        "--driver <driver>",
        "what runs the VM (default: libvirt when it answers, else qemu)",
      )
        .choices(VmDrivers).env("FLEET_VM_DRIVER"),
    )
    .addOption(
      new Option("--no-enroll", "only start the VM; do not enroll it as a fleet device")
        .env("FLEET_VM_NO_ENROLL"),
    )
    .addOption(cacheOption())
    .addOption(dirOption());
  for (const option of enrollOptions()) provision.addOption(option);
  provision
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
The VM gets a qcow2 overlay over the base image, a cloud-init NoCloud seed (a read-only virtio
disk labelled cidata) that creates --user with the SSH key and sudo, and user-mode networking
with the guest's SSH on a free 127.0.0.1 port. KVM is used when /dev/kvm really runs a guest,
TCG otherwise; aarch64 boots through the UEFI firmware found in /usr/share/qemu/firmware.
${DRIVERS}

Then, unless --no-enroll, it enrolls the VM as device --name over SSH exactly as
\`fleet device enroll\` does (same flags). The guest reaches this host's loopback as
${USER_NET_HOST_IP}, so a loopback --nats-url is given to the device with that address
unless --device-nats-url says otherwise.

Examples:
  fleet vm provision --name vm1 --label site=lab --nats-url nats://127.0.0.1:4222
  fleet vm provision --name arm1 --arch aarch64 --memory 2048 --no-enroll
  ssh -i ~/.local/share/fleet/vms/vm1/id_ed25519 -p PORT fleet@127.0.0.1`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      // Checked first: no VM is started for an enroll that cannot be done.
      const plan = flags.enroll ? await planEnroll(flags.name, flags, urlsFromGuest) : undefined;
      const provisioned = await provisionVm({
        name: flags.name,
        arch: flags.arch,
        recipe: imageRecipe(flags.arch, flags.suite),
        cacheDir: flags.cacheDir ?? defaultImageCacheDir(),
        vmsDir: flags.dir ?? defaultVmsDir(),
        memoryMb: flags.memory,
        cpus: flags.cpus,
        user: flags.user,
        ...(flags.sshKey ? { sshKey: flags.sshKey } : {}),
        ...(flags.accel ? { accel: flags.accel } : {}),
        ...(flags.driver ? { driver: flags.driver } : {}),
        timeoutMs: (flags.timeout ?? defaultTimeoutSeconds(flags.arch)) * 1000,
        log,
      });
      const { address, identityFile, knownHostsFile } = provisioned.ssh;
      printLine(
        `VM ${flags.name} (${flags.arch}, ${provisioned.state.accel}) answered SSH after ${
          provisioned.bootSeconds.toFixed(1)
        } s`,
      );
      printLine(
        `ssh -i ${identityFile} -p ${address.port} ${address.user}@${address.host}`,
      );
      const enrollLater =
        `fleet device enroll --device-id ${flags.name} --target ssh://${address.user}@${address.host}:${address.port} ` +
        // The VM's host key, recorded when it first answered SSH, is the one to trust.
        `--ssh-key ${identityFile} --known-hosts ${knownHostsFile} ` +
        `--nats-url nats://127.0.0.1:4222 --device-nats-url nats://${USER_NET_HOST_IP}:4222`;
      if (!plan) {
        printLine(`enroll it: ${enrollLater}`);
        return;
      }
      // The VM's user has sudo without a password: nothing to ask.
      await using target = await SshTarget.connect({
        ...provisioned.ssh,
        prompt: () => Promise.resolve(undefined),
      });
      try {
        await runEnroll(target, plan, log);
      } catch (error) {
        // The VM stays up: the steps done so far are kept and a new enroll picks up from there.
        printLine(`VM ${flags.name} runs but is not enrolled; once fixed: ${enrollLater} ...`);
        throw error;
      }
    });
  vm.addCommand(provision);

  vm.command("list")
    .description("List the VMs and whether they run")
    .addOption(dirOption())
    .addOption(
      new Option("-o, --output <format>", "table or json").choices(["table", "json"] as const)
        .default("table" as const).env("FLEET_VM_OUTPUT"),
    )
    .action(async (flags) => {
      const vms = await listVms(flags.dir ?? defaultVmsDir());
      if (flags.output === "json") {
        printLine(JSON.stringify(vms.map((v) => ({ ...v.state, running: v.running })), null, 2));
        return;
      }
      printLine(renderTable(
        ["NAME", "ARCH", "ACCEL", "DRIVER", "STATUS", "SSH"],
        vms.map(({ state, running }) => [
          state.name,
          state.arch,
          state.accel,
          state.driver.kind,
          running ? "running" : "stopped",
          `${state.ssh.address.user}@${state.ssh.address.host}:${state.ssh.address.port}`,
        ]),
      ));
    });

  vm.command("destroy")
    .description("Stop a VM and delete its disk and state")
    .addOption(nameOption("VM name"))
    .addOption(ignoreNotFoundOption("succeed when there is no such VM"))
    .addOption(dirOption())
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption())
    .action(async (flags) => {
      const log = loggerFrom(flags);
      const vmsDir = flags.dir ?? defaultVmsDir();
      if (await destroyVm(vmsDir, flags.name, log)) printLine(`VM ${flags.name} destroyed`);
      else if (flags.ignoreNotFound) printLine(`VM ${flags.name} not found`);
      else {
        log.error(`No VM named "${flags.name}" in ${vmsDir}`);
        Deno.exitCode = ExitCode.failure;
      }
    });
  return vm;
}

/** TCG emulation of a foreign architecture is several times slower than of our own. */
function defaultTimeoutSeconds(arch: string): number {
  return arch === "aarch64" ? 1200 : 600;
}
