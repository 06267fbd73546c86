import assert from "node:assert/strict";
import { VmBootError } from "../../vm/mod.ts";
import { Libvirt } from "./libvirt.ts";
import { startLibvirtd } from "../../testing/libvirtd.ts";

Deno.test("Libvirt.connect() says why when no daemon answers at the URI", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const uri = `qemu:///system?socket=${dir}/libvirt-sock`;
    const found = await Libvirt.connect(uri);
    assert.ok(!(found instanceof Libvirt));
    assert.match(
      found.unavailable,
      new RegExp(`no libvirt daemon answers at ${RegExp.escape(uri)}`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Libvirt against a real libvirtd: unknown domains, a refused definition", async () => {
  await using daemon = await startLibvirtd();
  const libvirt = await Libvirt.connect(daemon.uri);
  assert.ok(libvirt instanceof Libvirt, JSON.stringify(libvirt));
  assert.equal(await libvirt.state("fleet-no-such-vm"), undefined);
  // Removing what is not there is not an error: destroy stays idempotent.
  await libvirt.remove("fleet-no-such-vm");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/bad.xml`,
      `<domain type="qemu"><name>fleet-bad</name></domain>`,
    );
    await assert.rejects(
      () => libvirt.defineAndStart("fleet-bad", `${dir}/bad.xml`),
      (error: unknown) =>
        error instanceof VmBootError && /refused domain fleet-bad/.test(error.message),
    );
    assert.equal(await libvirt.state("fleet-bad"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startLibvirtd() twice: virtlogd answers again though the first left its socket", async () => {
  // A virtlogd stopped by SIGTERM leaves /run/libvirt/virtlogd-sock behind; the second daemon
  // must not take that file for a running virtlogd, or no domain can start.
  for (let round = 0; round < 2; round++) {
    await using _daemon = await startLibvirtd();
    const connection = await Deno.connect({
      transport: "unix",
      path: "/run/libvirt/virtlogd-sock",
    });
    connection.close();
  }
});
