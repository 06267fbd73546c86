import assert from "node:assert/strict";
import { tarArchive } from "./tar.ts";

const encoder = new TextEncoder();

async function tar(args: string[], cwd?: string): Promise<string> {
  const output = await new Deno.Command("tar", { args, ...(cwd ? { cwd } : {}) }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `tar ${args.join(" ")} failed: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

Deno.test("tarArchive() writes an archive that system tar lists and extracts", async () => {
  const longDir = `${"d".repeat(60)}/${"e".repeat(60)}`;
  const longPath = `${longDir}/${"f".repeat(90)}.txt`; // > 100 bytes: needs the prefix field
  const binary = Uint8Array.from({ length: 1500 }, (_, i) => i % 256);
  const archive = tarArchive([
    { path: "Containerfile", data: encoder.encode("FROM scratch\n") },
    { path: "bin/tool", data: binary, mode: 0o755 },
    { path: "empty", data: new Uint8Array() },
    { path: longPath, data: encoder.encode("long\n") },
  ]);
  assert.equal(archive.length % 512, 0);

  const dir = await Deno.makeTempDir({ prefix: "fleet-tar-test-" });
  try {
    await Deno.writeFile(`${dir}/a.tar`, archive);
    const listing = (await tar(["-tvf", `${dir}/a.tar`])).trim().split("\n");
    assert.equal(listing.length, 4);
    assert.match(listing[0] ?? "", /^-rw-r--r-- 0\/0\s+13 1970-01-01 00:00 Containerfile$/);
    assert.match(listing[1] ?? "", /^-rwxr-xr-x 0\/0\s+1500 .* bin\/tool$/);
    assert.match(listing[2] ?? "", /^-rw-r--r-- 0\/0\s+0 .* empty$/);
    assert.ok(listing[3]?.endsWith(` ${longPath}`), listing[3]);

    await Deno.mkdir(`${dir}/out`);
    await tar(["-xf", `${dir}/a.tar`, "-C", `${dir}/out`]);
    assert.deepEqual(await Deno.readFile(`${dir}/out/bin/tool`), binary);
    assert.equal(await Deno.readTextFile(`${dir}/out/${longPath}`), "long\n");
    assert.equal((await Deno.stat(`${dir}/out/bin/tool`)).mode! & 0o777, 0o755);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tarArchive() of no files is just the two zero end blocks", () => {
  assert.deepEqual(tarArchive([]), new Uint8Array(1024));
});

Deno.test("tarArchive() is deterministic", () => {
  const files = [{ path: "a", data: encoder.encode("x") }];
  assert.deepEqual(tarArchive(files), tarArchive(files));
});

Deno.test("tarArchive() rejects paths tar could not represent safely", () => {
  const data = new Uint8Array();
  for (const path of ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"]) {
    assert.throws(() => tarArchive([{ path, data }]), TypeError, path);
  }
  assert.throws(() => tarArchive([{ path: "x".repeat(101), data }]), /too long/);
  assert.throws(() => tarArchive([{ path: "a", data }, { path: "a", data }]), /Duplicate/);
  assert.throws(() => tarArchive([{ path: "a", data, mode: 0o10000 }]), /mode/);
});
