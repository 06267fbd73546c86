import assert from "node:assert/strict";
import { ElfError, readElf } from "./elf.ts";

interface FakeElf {
  machine?: number;
  interpreter?: string;
  soname?: string;
  needed?: string[];
  /** Leave DT_STRTAB out of the dynamic section. */
  noStrtab?: boolean;
}

const BASE = 0x400000n;

/** A minimal little-endian ELF64 file: PT_INTERP, one PT_LOAD over the whole file, PT_DYNAMIC. */
function elf(spec: FakeElf): Uint8Array {
  const strings = ["", ...(spec.needed ?? []), ...(spec.soname ? [spec.soname] : [])];
  const strtab: number[] = [];
  const index = new Map<string, number>();
  for (const s of strings) {
    index.set(s, strtab.length);
    strtab.push(...new TextEncoder().encode(s), 0);
  }
  const interp = spec.interpreter === undefined
    ? undefined
    : [...new TextEncoder().encode(spec.interpreter), 0];
  const dyn: [bigint, bigint][] = [];
  const phnum = (interp ? 1 : 0) + 2;
  const interpAt = 64 + phnum * 56;
  const strtabAt = interpAt + (interp?.length ?? 0);
  const dynAt = Math.ceil((strtabAt + strtab.length) / 8) * 8;
  for (const n of spec.needed ?? []) dyn.push([1n, BigInt(index.get(n)!)]);
  if (spec.soname) dyn.push([14n, BigInt(index.get(spec.soname)!)]);
  if (!spec.noStrtab) dyn.push([5n, BASE + BigInt(strtabAt)]);
  dyn.push([0n, 0n]);
  const size = dynAt + dyn.length * 16;

  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x7f454c46);
  bytes[4] = 2;
  bytes[5] = 1;
  view.setUint16(0x12, spec.machine ?? 0xb7, true);
  view.setBigUint64(0x20, 64n, true);
  view.setUint16(0x36, 56, true);
  view.setUint16(0x38, phnum, true);
  let ph = 64;
  const header = (type: number, offset: number, filesz: number) => {
    view.setUint32(ph, type, true);
    view.setBigUint64(ph + 0x08, BigInt(offset), true);
    view.setBigUint64(ph + 0x10, BASE + BigInt(offset), true);
    view.setBigUint64(ph + 0x20, BigInt(filesz), true);
    ph += 56;
  };
  if (interp) header(3, interpAt, interp.length);
  header(1, 0, size);
  header(2, dynAt, dyn.length * 16);
  if (interp) bytes.set(interp, interpAt);
  bytes.set(strtab, strtabAt);
  dyn.forEach(([tag, value], i) => {
    view.setBigUint64(dynAt + i * 16, tag, true);
    view.setBigUint64(dynAt + i * 16 + 8, value, true);
  });
  return bytes;
}

Deno.test("readElf() reads an executable's machine, loader and needed libraries", () => {
  assert.deepEqual(
    readElf(elf({
      interpreter: "/lib/ld-linux-aarch64.so.1",
      needed: ["libgcc_s.so.1", "libc.so.6", "ld-linux-aarch64.so.1"],
    })),
    {
      machine: "aarch64",
      interpreter: "/lib/ld-linux-aarch64.so.1",
      soname: undefined,
      needed: ["libgcc_s.so.1", "libc.so.6", "ld-linux-aarch64.so.1"],
    },
  );
});

Deno.test("readElf() reads a library's soname; an unknown machine is other", () => {
  assert.deepEqual(readElf(elf({ machine: 0x3e, soname: "libm.so.6", needed: ["libc.so.6"] })), {
    machine: "x86_64",
    interpreter: undefined,
    soname: "libm.so.6",
    needed: ["libc.so.6"],
  });
  assert.equal(readElf(elf({ machine: 0x28 })).machine, "other");
});

Deno.test("readElf() refuses what is not a whole 64-bit ELF file", () => {
  assert.throws(() => readElf(new TextEncoder().encode("#!/bin/sh\n".repeat(10))), ElfError);
  const ia32 = elf({});
  ia32[4] = 1;
  assert.throws(() => readElf(ia32), /32-bit/);
  const full = elf({ interpreter: "/lib/ld.so", needed: ["libc.so.6"] });
  assert.throws(() => readElf(full.subarray(0, 100)), /past its end/);
  assert.throws(() => readElf(elf({ needed: ["libc.so.6"], noStrtab: true })), /no string table/);
});
