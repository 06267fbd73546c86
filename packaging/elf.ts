/**
 * What an image or package needs to know of a 64-bit ELF file, read from its bytes alone: its
 * machine, its dynamic loader (`PT_INTERP`), its soname and the libraries it names
 * (`DT_NEEDED`). Nothing is executed, so a binary of another architecture is read as well as
 * one of this host (`ldd` runs the loader, which cannot load a foreign binary).
 *
 * @module
 */

/** The ELF machines Fleet ships for, by `e_machine`. */
const MACHINES: Record<number, ElfMachine> = { 0x3e: "x86_64", 0xb7: "aarch64" };

/** An ELF machine Fleet ships for, or `other`. */
export type ElfMachine = "x86_64" | "aarch64" | "other";

/** The dynamic-linking facts of an ELF file. */
export interface ElfInfo {
  machine: ElfMachine;
  /** The `PT_INTERP` path (the dynamic loader); undefined for a library or a static binary. */
  interpreter: string | undefined;
  /** `DT_SONAME`, for a shared library that has one. */
  soname: string | undefined;
  /** `DT_NEEDED` names, in order. */
  needed: string[];
}

/** The file is not an ELF file this reader understands; `message` says why. */
export class ElfError extends Error {
  override name = "ElfError";
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;

/**
 * Reads the machine, loader, soname and needed libraries of a 64-bit ELF file.
 *
 * @throws {ElfError} when the bytes are not a 64-bit ELF file, or a table points outside it.
 */
export function readElf(bytes: Uint8Array): ElfInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || view.getUint32(0) !== 0x7f454c46) {
    throw new ElfError("it is not an ELF file");
  }
  if (bytes[4] !== 2) throw new ElfError("it is a 32-bit ELF file; only 64-bit ones are read");
  const le = bytes[5] === 1;
  const u16 = (at: number) => view.getUint16(at, le);
  const u64 = (at: number) => {
    if (at + 8 > bytes.length) throw new ElfError(`a table at offset ${at} is past its end`);
    return view.getBigUint64(at, le);
  };

  const phoff = Number(u64(0x20));
  const phentsize = u16(0x36);
  const headers = Array.from({ length: u16(0x38) }, (_, i) => {
    const at = phoff + i * phentsize;
    return {
      type: Number(u64(at) & 0xffff_ffffn),
      offset: Number(u64(at + 0x08)),
      vaddr: u64(at + 0x10),
      filesz: Number(u64(at + 0x20)),
    };
  });
  const cString = (at: number) => {
    const end = bytes.indexOf(0, at);
    if (at >= bytes.length || end < 0) throw new ElfError(`a string at ${at} is past its end`);
    return new TextDecoder().decode(bytes.subarray(at, end));
  };

  const interp = headers.find((h) => h.type === PT_INTERP);
  const info: ElfInfo = {
    machine: MACHINES[u16(0x12)] ?? "other",
    interpreter: interp === undefined ? undefined : cString(interp.offset),
    soname: undefined,
    needed: [],
  };

  const dynamic = headers.find((h) => h.type === PT_DYNAMIC);
  if (dynamic === undefined) return info;
  const entries: [bigint, bigint][] = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.filesz; at += 16) {
    const tag = u64(at);
    if (tag === DT_NULL) break;
    entries.push([tag, u64(at + 8)]);
  }
  // DT_STRTAB is an address: find the loaded segment holding it to get its file offset.
  const strtabAddr = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  if (strtabAddr === undefined) throw new ElfError("its dynamic section has no string table");
  const load = headers.find((h) =>
    h.type === PT_LOAD && h.vaddr <= strtabAddr && strtabAddr < h.vaddr + BigInt(h.filesz)
  );
  if (load === undefined) throw new ElfError("its string table is in no loaded segment");
  const strtab = load.offset + Number(strtabAddr - load.vaddr);
  for (const [tag, value] of entries) {
    if (tag === DT_NEEDED) info.needed.push(cString(strtab + Number(value)));
    if (tag === DT_SONAME) info.soname = cString(strtab + Number(value));
  }
  return info;
}
