/**
 * The libvirt domain of a Fleet VM: the same machine as {@link qemuCommand} builds (direct
 * kernel boot, overlay and seed on virtio, serial console to a file, user-mode networking
 * with the guest's SSH on a loopback port), written as domain XML for `virsh define`. Pure.
 */
import { kernelCommandLine, type QemuSpec } from "./qemu_args.ts";

export interface DomainSpec extends Omit<QemuSpec, "pidFile" | "qmpSocket"> {
  /** Absolute path of the qemu-system binary libvirt runs. */
  emulator: string;
  /**
   * The user and group qemu runs as. The VM's files stay this user's: libvirt neither hands
   * them to its own qemu user nor relabels them, and a private VM directory stays private.
   */
  runAs: { uid: number; gid: number };
}

const NIC_SLOT = "0x10";

/** libvirt domain names are global to the daemon: the prefix keeps Fleet's recognisable. */
export function domainName(vmName: string): string {
  return `fleet-${vmName}`;
}

/** The domain XML of the VM. */
export function domainXml(spec: DomainSpec): string {
  if (spec.arch === "aarch64" && spec.firmware === undefined) {
    throw new TypeError("aarch64 VMs need UEFI firmware (spec.firmware)");
  }
  const kvm = spec.accel === "kvm";
  const machine = spec.arch === "x86_64" ? spec.machine ?? "q35" : "virt";
  const rootBus = machine === "pc" ? "pci.0" : "pcie.0";
  const lines = [
    `<domain type="${
      kvm ? "kvm" : "qemu"
    }" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">`,
    `  <name>${text(domainName(spec.name))}</name>`,
    `  <memory unit="MiB">${spec.memoryMb}</memory>`,
    `  <vcpu>${spec.cpus}</vcpu>`,
    `  <os>`,
    `    <type arch="${spec.arch}" machine="${machine}">hvm</type>`,
    ...(spec.firmware
      ? [
        `    <loader readonly="yes" type="pflash">${text(spec.firmware.code)}</loader>`,
        `    <nvram>${text(spec.firmware.vars)}</nvram>`,
      ]
      : []),
    `    <kernel>${text(spec.boot.kernel)}</kernel>`,
    `    <initrd>${text(spec.boot.initrd)}</initrd>`,
    `    <cmdline>${text(kernelCommandLine(spec.arch, spec.boot.root))}</cmdline>`,
    `  </os>`,
    ...(spec.arch === "x86_64" ? [`  <features><acpi/></features>`] : []),
    `  ${cpuXml(spec)}`,
    `  <clock offset="utc"/>`,
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>restart</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    `    <emulator>${text(spec.emulator)}</emulator>`,
    `    <disk type="file" device="disk">`,
    `      <driver name="qemu" type="qcow2" discard="unmap"/>`,
    `      <source file="${attr(spec.disk)}"/>`,
    `      <target dev="vda" bus="virtio"/>`,
    `    </disk>`,
    `    <disk type="file" device="disk">`,
    `      <driver name="qemu" type="raw"/>`,
    `      <source file="${attr(spec.seed)}"/>`,
    `      <target dev="vdb" bus="virtio"/>`,
    `      <readonly/>`,
    `    </disk>`,
    `    <serial type="file">`,
    `      <source path="${attr(spec.consoleLog)}"/>`,
    `      <target port="0"/>`,
    `    </serial>`,
    // Entropy for first-boot key generation, as with the qemu driver.
    `    <rng model="virtio"><backend model="random">/dev/urandom</backend></rng>`,
    `    <controller type="usb" model="none"/>`,
    `    <memballoon model="none"/>`,
    `  </devices>`,
    `  <seclabel type="static" model="dac" relabel="no">`,
    `    <label>+${spec.runAs.uid}:+${spec.runAs.gid}</label>`,
    `  </seclabel>`,
    // qemu's own user-mode network with its port forward, which libvirt only offers through
    // passt: the guest sees the same network as with the qemu driver, the host's loopback as
    // 10.0.2.2, which is what the enroll step writes into the device's NATS URLs. The NIC
    // gets a slot of its own, far above the root ports libvirt places from slot 1 up.
    `  <qemu:commandline>`,
    `    <qemu:arg value="-netdev"/>`,
    `    <qemu:arg value="user,id=fleetnet0,hostfwd=tcp:127.0.0.1:${spec.sshPort}-:22"/>`,
    `    <qemu:arg value="-device"/>`,
    `    <qemu:arg value="virtio-net-pci,netdev=fleetnet0,bus=${rootBus},addr=${NIC_SLOT}"/>`,
    `  </qemu:commandline>`,
    `</domain>`,
    "",
  ];
  return lines.join("\n");
}

/** The same CPU as the qemu driver: the host's under KVM, a fast emulated one under TCG. */
function cpuXml(spec: DomainSpec): string {
  if (spec.accel === "kvm") return `<cpu mode="host-passthrough"/>`;
  if (spec.arch === "x86_64") return `<cpu mode="maximum" migratable="off"/>`;
  // See qemuCommand: cortex-a72 has no pointer authentication to emulate.
  return `<cpu mode="custom" match="exact"><model fallback="forbid">cortex-a72</model></cpu>`;
}

function text(value: string): string {
  return value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function attr(value: string): string {
  return text(value).replaceAll('"', "&quot;");
}
