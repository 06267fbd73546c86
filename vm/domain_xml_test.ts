import assert from "node:assert/strict";
import { domainName, type DomainSpec, domainXml } from "./domain_xml.ts";
import { kernelCommandLine } from "./qemu_args.ts";

const base: DomainSpec = {
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
  emulator: "/usr/bin/qemu-system-x86_64",
  runAs: { uid: 1000, gid: 1000 },
};

/** The text of every `<tag ...>text</tag>` in the XML. */
function texts(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}(?: [^>]*)?>([^<]*)</${tag}>`, "g"))].map((m) =>
    m[1]!
  );
}

Deno.test("domainXml() x86_64 under TCG: a qemu domain, q35, maximum CPU, ACPI, no firmware", () => {
  const xml = domainXml(base);
  assert.match(
    xml,
    /^<domain type="qemu" xmlns:qemu="http:\/\/libvirt.org\/schemas\/domain\/qemu\/1.0">/,
  );
  assert.deepEqual(texts(xml, "name"), ["fleet-vm1"]);
  assert.match(xml, /<type arch="x86_64" machine="q35">hvm<\/type>/);
  assert.match(xml, /<cpu mode="maximum" migratable="off"\/>/);
  assert.match(xml, /<features><acpi\/><\/features>/);
  assert.doesNotMatch(xml, /<loader|<nvram/);
  assert.deepEqual(texts(xml, "memory"), ["1024"]);
  assert.deepEqual(texts(xml, "vcpu"), ["2"]);
  assert.deepEqual(texts(xml, "emulator"), ["/usr/bin/qemu-system-x86_64"]);
});

Deno.test("domainXml() boots the image's kernel with the qemu driver's command line", () => {
  const xml = domainXml(base);
  assert.deepEqual(texts(xml, "kernel"), ["/img/vmlinuz"]);
  assert.deepEqual(texts(xml, "initrd"), ["/img/initrd.img"]);
  assert.deepEqual(texts(xml, "cmdline"), [kernelCommandLine("x86_64", "/dev/vda1")]);
});

Deno.test("domainXml() attaches the overlay writable and the seed read-only, both virtio", () => {
  const xml = domainXml(base);
  const disks = [...xml.matchAll(/<disk [^>]*>([\s\S]*?)<\/disk>/g)].map((m) => m[1]!);
  assert.equal(disks.length, 2);
  assert.match(disks[0]!, /type="qcow2"/);
  assert.match(disks[0]!, /<source file="\/vms\/vm1\/overlay.qcow2"\/>/);
  assert.match(disks[0]!, /<target dev="vda" bus="virtio"\/>/);
  assert.doesNotMatch(disks[0]!, /<readonly\/>/);
  assert.match(disks[1]!, /type="raw"/);
  assert.match(disks[1]!, /<source file="\/vms\/vm1\/seed.img"\/>/);
  assert.match(disks[1]!, /<target dev="vdb" bus="virtio"\/>/);
  assert.match(disks[1]!, /<readonly\/>/);
});

Deno.test("domainXml() forwards the loopback SSH port on qemu's user network and logs the console", () => {
  const xml = domainXml(base);
  const args = [...xml.matchAll(/<qemu:arg value="([^"]*)"\/>/g)].map((m) => m[1]);
  assert.deepEqual(args, [
    "-netdev",
    "user,id=fleetnet0,hostfwd=tcp:127.0.0.1:2222-:22",
    "-device",
    "virtio-net-pci,netdev=fleetnet0,bus=pcie.0,addr=0x10",
  ]);
  const pc = domainXml({ ...base, machine: "pc" });
  assert.match(pc, /virtio-net-pci,netdev=fleetnet0,bus=pci.0,addr=0x10/);
  assert.match(xml, /<serial type="file">\s*<source path="\/vms\/vm1\/console.log"\/>/);
  assert.match(xml, /<rng model="virtio">/);
});

Deno.test("domainXml() runs qemu as the given user without relabelling the VM's files", () => {
  const xml = domainXml(base);
  assert.match(
    xml,
    /<seclabel type="static" model="dac" relabel="no">\s*<label>\+1000:\+1000<\/label>\s*<\/seclabel>/,
  );
});

Deno.test("domainXml() aarch64 under KVM: a kvm domain, virt machine, UEFI pflash, host CPU", () => {
  const xml = domainXml({
    ...base,
    arch: "aarch64",
    accel: "kvm",
    emulator: "/usr/bin/qemu-system-aarch64",
    firmware: { code: "/vms/vm1/code.fd", vars: "/vms/vm1/vars.fd" },
  });
  assert.match(xml, /^<domain type="kvm"/);
  assert.match(xml, /<type arch="aarch64" machine="virt">hvm<\/type>/);
  assert.deepEqual(texts(xml, "loader"), ["/vms/vm1/code.fd"]);
  assert.match(xml, /<loader readonly="yes" type="pflash">/);
  assert.deepEqual(texts(xml, "nvram"), ["/vms/vm1/vars.fd"]);
  assert.match(xml, /<cpu mode="host-passthrough"\/>/);
  assert.doesNotMatch(xml, /<acpi\/>/);
  assert.deepEqual(texts(xml, "cmdline"), [kernelCommandLine("aarch64", "/dev/vda1")]);
});

Deno.test("domainXml() aarch64 under TCG emulates a cortex-a72", () => {
  const xml = domainXml({
    ...base,
    arch: "aarch64",
    firmware: { code: "/c.fd", vars: "/v.fd" },
  });
  assert.match(xml, /<model fallback="forbid">cortex-a72<\/model>/);
});

Deno.test("domainXml() refuses aarch64 without firmware", () => {
  assert.throws(() => domainXml({ ...base, arch: "aarch64" }), TypeError);
});

Deno.test("domainXml() escapes paths for XML text and attributes", () => {
  const xml = domainXml({
    ...base,
    disk: `/vms/a&b "q"/overlay.qcow2`,
    boot: { ...base.boot, kernel: "/img/<k>&" },
  });
  assert.match(xml, /<source file="\/vms\/a&amp;b &quot;q&quot;\/overlay.qcow2"\/>/);
  assert.deepEqual(texts(xml, "kernel"), ["/img/&lt;k&gt;&amp;"]);
});

Deno.test("domainName() prefixes the VM name", () => {
  assert.equal(domainName("pi-1"), "fleet-pi-1");
});
