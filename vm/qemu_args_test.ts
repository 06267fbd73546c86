import assert from "node:assert/strict";
import { kernelCommandLine, qemuCommand, type QemuSpec } from "./qemu_args.ts";

const base: QemuSpec = {
  name: "vm1",
  arch: "x86_64",
  accel: "tcg",
  memoryMb: 1024,
  cpus: 2,
  disk: "/vms/vm1/overlay.qcow2",
  seed: "/vms/vm1/seed.img",
  boot: { kernel: "/img/vmlinuz", initrd: "/img/initrd.img", root: "/dev/vda1" },
  sshPort: 2222,
  consoleLog: "/vms/vm1/console.log",
  pidFile: "/vms/vm1/qemu.pid",
  qmpSocket: "/vms/vm1/qmp.sock",
};

/** The value after each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((
    a,
    i,
  ) => (a === flag && args[i + 1] !== undefined ? [args[i + 1] as string] : []));
}

Deno.test("qemuCommand() x86_64 under TCG: q35, multi-threaded TCG, max CPU, no firmware", () => {
  const { program, args } = qemuCommand(base);
  assert.equal(program, "qemu-system-x86_64");
  assert.deepEqual(values(args, "-machine"), ["q35"]);
  assert.deepEqual(values(args, "-accel"), ["tcg,thread=multi"]);
  assert.deepEqual(values(args, "-cpu"), ["max"]);
  assert.ok(!args.some((a) => a.includes("pflash")));
  assert.deepEqual(values(args, "-smp"), ["2"]);
  assert.deepEqual(values(args, "-m"), ["1024"]);
});

Deno.test("qemuCommand() x86_64 under KVM uses the host CPU; pc machine on request", () => {
  const { args } = qemuCommand({ ...base, accel: "kvm", machine: "pc" });
  assert.deepEqual(values(args, "-accel"), ["kvm"]);
  assert.deepEqual(values(args, "-cpu"), ["host"]);
  assert.deepEqual(values(args, "-machine"), ["pc"]);
});

Deno.test("qemuCommand() attaches the disk and the seed as virtio, the seed read-only", () => {
  const { args } = qemuCommand(base);
  const drives = values(args, "-drive");
  assert.deepEqual(drives, [
    "if=none,id=disk0,format=qcow2,discard=unmap,file=/vms/vm1/overlay.qcow2",
    "if=none,id=seed0,format=raw,readonly=on,file=/vms/vm1/seed.img",
  ]);
  const devices = values(args, "-device");
  assert.ok(devices.includes("virtio-blk-pci,drive=disk0"));
  assert.ok(devices.includes("virtio-blk-pci,drive=seed0"));
  assert.ok(devices.includes("virtio-net-pci,netdev=net0"));
});

Deno.test("qemuCommand() forwards a loopback port to the guest's SSH over user networking", () => {
  const { args } = qemuCommand(base);
  assert.deepEqual(values(args, "-netdev"), ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"]);
});

Deno.test("qemuCommand() boots the image's kernel directly with its root and console", () => {
  const { args } = qemuCommand(base);
  assert.deepEqual(values(args, "-kernel"), ["/img/vmlinuz"]);
  assert.deepEqual(values(args, "-initrd"), ["/img/initrd.img"]);
  assert.deepEqual(values(args, "-append"), [kernelCommandLine("x86_64", "/dev/vda1")]);
  assert.match(kernelCommandLine("x86_64", "/dev/vda1"), /root=\/dev\/vda1 .*console=ttyS0/);
  assert.match(kernelCommandLine("x86_64", "/dev/vda1"), /net\.ifnames=0/, "the seed names eth0");
  assert.match(kernelCommandLine("aarch64", "/dev/vda1"), /console=ttyAMA0/);
});

Deno.test("qemuCommand() runs in the background with a pid file, QMP and a console log", () => {
  const { args } = qemuCommand(base);
  assert.ok(args.includes("-daemonize"));
  assert.deepEqual(values(args, "-pidfile"), ["/vms/vm1/qemu.pid"]);
  assert.deepEqual(values(args, "-serial"), ["file:/vms/vm1/console.log"]);
  assert.deepEqual(values(args, "-qmp"), ["unix:/vms/vm1/qmp.sock,server=on,wait=off"]);
  assert.deepEqual(values(args, "-display"), ["none"]);
  assert.ok(args.includes("-nodefaults"));
});

Deno.test("qemuCommand() aarch64: virt machine, cortex-a72 under TCG, UEFI pflash pair", () => {
  const { program, args } = qemuCommand({
    ...base,
    arch: "aarch64",
    firmware: { code: "/vms/vm1/efi-code.fd", vars: "/vms/vm1/efi-vars.fd" },
  });
  assert.equal(program, "qemu-system-aarch64");
  assert.deepEqual(values(args, "-machine"), ["virt"]);
  assert.deepEqual(values(args, "-cpu"), ["cortex-a72"]);
  const drives = values(args, "-drive");
  assert.equal(drives[0], "if=pflash,format=raw,unit=0,readonly=on,file=/vms/vm1/efi-code.fd");
  assert.equal(drives[1], "if=pflash,format=raw,unit=1,file=/vms/vm1/efi-vars.fd");
  assert.match(values(args, "-append")[0] ?? "", /console=ttyAMA0/);
});

Deno.test("qemuCommand() aarch64 under KVM uses the host CPU", () => {
  const { args } = qemuCommand({
    ...base,
    arch: "aarch64",
    accel: "kvm",
    firmware: { code: "/c", vars: "/v" },
  });
  assert.deepEqual(values(args, "-cpu"), ["host"]);
  assert.deepEqual(values(args, "-accel"), ["kvm"]);
});

Deno.test("qemuCommand() refuses aarch64 without firmware", () => {
  assert.throws(() => qemuCommand({ ...base, arch: "aarch64" }), /UEFI firmware/);
});

Deno.test("qemuCommand() doubles commas in drive paths (qemu's option syntax)", () => {
  const { args } = qemuCommand({ ...base, disk: "/a,b/overlay.qcow2" });
  assert.ok(values(args, "-drive").some((d) => d.endsWith("file=/a,,b/overlay.qcow2")));
});
