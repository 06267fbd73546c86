import assert from "node:assert/strict";
import { PFLASH_SIZE } from "../../vm/mod.ts";
import { discoverFirmware, preparePflash } from "./firmware_files.ts";

Deno.test("discoverFirmware() reads descriptor files and pads the chosen firmware to 64 MiB", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/etc`);
    await Deno.mkdir(`${dir}/share`);
    await Deno.writeFile(`${dir}/CODE.fd`, new Uint8Array(2 * 1024 * 1024).fill(0xaa));
    await Deno.writeFile(`${dir}/VARS.fd`, new Uint8Array(1024).fill(0x55));
    const descriptor = (code: string, features: string[]) =>
      JSON.stringify({
        "interface-types": ["uefi"],
        mapping: {
          device: "flash",
          executable: { filename: code, format: "raw" },
          "nvram-template": { filename: `${dir}/VARS.fd`, format: "raw" },
        },
        targets: [{ architecture: "aarch64", machines: ["virt-*"] }],
        features,
      });
    await Deno.writeTextFile(
      `${dir}/share/50-secure.json`,
      descriptor(`${dir}/CODE.fd`, ["secure-boot"]),
    );
    await Deno.writeTextFile(`${dir}/share/60-plain.json`, descriptor(`${dir}/MISSING.fd`, []));
    await Deno.writeTextFile(`${dir}/etc/60-plain.json`, descriptor(`${dir}/CODE.fd`, []));
    await Deno.writeTextFile(`${dir}/share/70-garbage.json`, "{ not json");

    const choice = await discoverFirmware("aarch64", [`${dir}/etc`, `${dir}/share`]);
    assert.equal(choice.source, `${dir}/etc/60-plain.json`);
    const out = `${dir}/vm`;
    await Deno.mkdir(out);
    const pair = await preparePflash(choice, out);
    const code = await Deno.readFile(pair.code);
    const vars = await Deno.readFile(pair.vars);
    assert.equal(code.length, PFLASH_SIZE);
    assert.equal(vars.length, PFLASH_SIZE);
    assert.equal(code[0], 0xaa);
    assert.equal(code[2 * 1024 * 1024], 0);
    assert.equal(vars[1023], 0x55);
    assert.equal(vars[1024], 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("discoverFirmware() says which package to install when nothing is found", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => discoverFirmware("x86_64", [dir]),
      /install the Debian package ovmf/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
