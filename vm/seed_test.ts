import assert from "node:assert/strict";
import { parse } from "yaml";
import { SEED_LABEL, seedFiles } from "./seed.ts";
import { VmUsageError } from "./errors.ts";

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0123456789abcdefABCDEF fleet-vm-vm1";
const spec = {
  hostname: "vm1",
  instanceId: "fleet-vm1-1234",
  user: "fleet",
  sshPublicKey: KEY + "\n",
};

Deno.test("seedFiles() meta-data names the instance and the host", () => {
  assert.deepEqual(parse(seedFiles(spec)["meta-data"]), {
    "instance-id": "fleet-vm1-1234",
    "local-hostname": "vm1",
  });
});

Deno.test("seedFiles() user-data is cloud-config creating the user with the key and sudo", () => {
  const text = seedFiles(spec)["user-data"];
  assert.ok(text.startsWith("#cloud-config\n"), "cloud-init needs the header line");
  const data = parse(text);
  assert.equal(data.hostname, "vm1");
  assert.equal(data.ssh_pwauth, false);
  assert.deepEqual(data.users, [{
    name: "fleet",
    groups: ["sudo"],
    shell: "/bin/bash",
    sudo: "ALL=(ALL) NOPASSWD:ALL",
    lock_passwd: true,
    ssh_authorized_keys: [KEY],
  }]);
});

Deno.test("seedFiles() user-data turns off the guest's initramfs rebuilds (VMs boot an outside initrd)", () => {
  const data = parse(seedFiles(spec)["user-data"]);
  assert.deepEqual(data.bootcmd, [[
    "sed",
    "-i",
    "s/^update_initramfs=.*/update_initramfs=no/",
    "/etc/initramfs-tools/update-initramfs.conf",
  ]]);
});

Deno.test("seedFiles() network-config is version 2 with DHCP on eth0", () => {
  assert.deepEqual(parse(seedFiles(spec)["network-config"]), {
    version: 2,
    ethernets: { eth0: { dhcp4: true } },
  });
});

Deno.test("seedFiles() rejects a user name and keys cloud-init would not take", () => {
  assert.throws(() => seedFiles({ ...spec, user: "Root User" }), VmUsageError);
  assert.throws(() => seedFiles({ ...spec, sshPublicKey: "not a key" }), VmUsageError);
  assert.throws(
    () => seedFiles({ ...spec, sshPublicKey: `${KEY}\n${KEY}` }),
    /one OpenSSH key line/,
  );
});

Deno.test("SEED_LABEL is the NoCloud label", () => assert.equal(SEED_LABEL, "cidata"));
