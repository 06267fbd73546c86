import assert from "node:assert/strict";
import type { ElfInfo } from "../packaging/elf.ts";
import { UsageError } from "../core/errors.ts";
import { type FoundLibrary, ImageContextError, imageLibraries } from "./image.ts";
import { archImageRef, type BuiltImage, imageSizeLines } from "./image_index.ts";

const lib = (needed: string[], machine: ElfInfo["machine"] = "aarch64"): ElfInfo => ({
  machine,
  interpreter: undefined,
  soname: undefined,
  needed,
});

/** The arm64 cross sysroot as Debian's libc6-arm64-cross and libgcc-s1-arm64-cross lay it out. */
const SYSROOT: Record<string, ElfInfo> = {
  "ld-linux-aarch64.so.1": lib([]),
  "libc.so.6": lib(["ld-linux-aarch64.so.1"]),
  "libgcc_s.so.1": lib(["libc.so.6"]),
  "libm.so.6": lib(["libc.so.6", "ld-linux-aarch64.so.1"]),
  "libdl.so.2": lib(["libc.so.6"]),
};

function finder(table: Record<string, ElfInfo>) {
  return (name: string): Promise<FoundLibrary | undefined> => {
    const elf = table[name];
    return Promise.resolve(
      elf && { path: `/usr/aarch64-linux-gnu/lib/${name}`, data: new Uint8Array([1]), elf },
    );
  };
}

const DENO_ARM64: ElfInfo = {
  machine: "aarch64",
  interpreter: "/lib/ld-linux-aarch64.so.1",
  soname: undefined,
  needed: ["libdl.so.2", "libgcc_s.so.1", "libm.so.6", "libc.so.6", "ld-linux-aarch64.so.1"],
};

Deno.test("imageLibraries() puts the loader at PT_INTERP and every library in the multiarch dir", async () => {
  const libraries = await imageLibraries("deno", DENO_ARM64, "arm64", finder(SYSROOT));
  assert.deepEqual(libraries.map((l) => [l.source, l.target]), [
    ["/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-aarch64.so.1"],
    ["/usr/aarch64-linux-gnu/lib/libdl.so.2", "/lib/aarch64-linux-gnu/libdl.so.2"],
    ["/usr/aarch64-linux-gnu/lib/libgcc_s.so.1", "/lib/aarch64-linux-gnu/libgcc_s.so.1"],
    ["/usr/aarch64-linux-gnu/lib/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6"],
    ["/usr/aarch64-linux-gnu/lib/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"],
  ]);
});

Deno.test("imageLibraries() follows what the libraries need in turn", async () => {
  const table = { ...SYSROOT, "libz.so.1": lib(["libc.so.6"]), "libfoo.so": lib(["libz.so.1"]) };
  const binary = { ...DENO_ARM64, needed: ["libfoo.so"] };
  const targets = (await imageLibraries("x", binary, "arm64", finder(table))).map((l) => l.target);
  assert.deepEqual(targets, [
    "/lib/ld-linux-aarch64.so.1",
    "/lib/aarch64-linux-gnu/libfoo.so",
    "/lib/aarch64-linux-gnu/libz.so.1",
    "/lib/aarch64-linux-gnu/libc.so.6",
  ]);
});

Deno.test("imageLibraries() names the cross packages for a missing library", async () => {
  const { "libgcc_s.so.1": _, ...withoutGcc } = SYSROOT;
  await assert.rejects(
    imageLibraries("/cache/arm64/deno", DENO_ARM64, "arm64", finder(withoutGcc)),
    (error: unknown) =>
      error instanceof ImageContextError && error.path === "/cache/arm64/deno" &&
      error.message.includes('"libgcc_s.so.1" (aarch64) is not installed') &&
      error.message.includes("libc6-arm64-cross libgcc-s1-arm64-cross"),
  );
});

Deno.test("imageLibraries() refuses a binary of another architecture; a static one needs none", async () => {
  await assert.rejects(
    imageLibraries("deno", { ...DENO_ARM64, machine: "x86_64" }, "arm64", finder(SYSROOT)),
    /x86_64 executable, but the arm64 image needs an aarch64 one/,
  );
  const noTable = finder({});
  const staticBinary = { ...DENO_ARM64, interpreter: undefined, needed: [] };
  assert.deepEqual(await imageLibraries("deno", staticBinary, "arm64", noTable), []);
});

Deno.test("archImageRef() tags each architecture's image after the index; a name needs a tag", () => {
  assert.equal(archImageRef("localhost/fleet:0.1.0", "arm64"), "localhost/fleet:0.1.0-arm64");
  assert.equal(
    archImageRef("registry.lan:5000/fleet/fleet:1.2", "amd64"),
    "registry.lan:5000/fleet/fleet:1.2-amd64",
  );
  assert.throws(() => archImageRef("registry.lan:5000/fleet", "amd64"), UsageError);
  assert.throws(() => archImageRef("localhost/fleet", "amd64"), /has no tag/);
});

Deno.test("imageSizeLines() gives each image's uncompressed and compressed size", () => {
  const image: BuiltImage = {
    arch: "arm64",
    ref: "localhost/fleet:1-arm64",
    id: "abc",
    size: 90_500_000,
    layers: [
      { layer: "runtime", bytes: 86_000_000, gzipBytes: 33_000_000 },
      { layer: "app", bytes: 4_400_000, gzipBytes: 1_100_000 },
    ],
  };
  assert.deepEqual(imageSizeLines([image]), [
    "localhost/fleet:1-arm64  linux/arm64: 90.5 MB uncompressed, ~34.1 MB compressed " +
    "(runtime 86.0 MB, gzip 33.0 MB; app 4.4 MB, gzip 1.1 MB)",
  ]);
});
