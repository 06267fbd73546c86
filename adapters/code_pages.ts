/**
 * Gives back the resident pages of the program's code and read-only data that start-up read
 * and an idle agent no longer touches. Starting Deno reads far more of its 100 MB executable
 * than running does (its start-up snapshot, module loading and parsing): an idle agent kept
 * 36 MB of file pages resident, of which it touches about 17 MB again (bench:agent).
 *
 * `madvise(MADV_DONTNEED)` on a private mapping of a file drops the process's pages; the next
 * access reads them again from the page cache or the file. That is only the same data for a
 * page the process never wrote, so only mappings that cannot be written and hold no page of
 * their own (smaps' `Anonymous: 0 kB`, which rules out relocated read-only data) are dropped:
 * what the kernel's own reclaim does to them under memory pressure.
 * @module
 */
import { errorMessage, FleetError } from "../core/errors.ts";

/** This process's code pages, as the agent's memory keeper sees them. */
export interface CodePages {
  /**
   * Drops the resident pages of the program's read-only file mappings.
   * @returns the bytes that were resident in them.
   * @throws {CodePagesError} when the C library cannot be called or refuses.
   */
  release(): number;
}

/** Why the code pages could not be given back; the agent keeps them and runs on. */
export class CodePagesError extends FleetError {
  override name = "CodePagesError";
  constructor(message: string, options?: ErrorOptions) {
    super("failure", message, options);
  }
}

/**
 * Where Debian's C library is, for either architecture, with and without a merged /usr: the
 * only library the agent's Deno permissions let it open (`--allow-ffi`).
 */
export const GLIBC_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/aarch64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
];

/** One mapping of smaps whose pages can be dropped. */
export interface DroppableMapping {
  start: bigint;
  end: bigint;
  /** Resident bytes. */
  rss: number;
  path: string;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][ps]) [0-9a-f]+ \S+ \d+\s*(.*)$/;
const KB_FIELD = /^(\w+):\s+(\d+) kB$/;

interface SmapsEntry {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  kb: Map<string, number>;
  flags: string[];
}

/** The entries of `/proc/<pid>/smaps`. */
function parseSmaps(smaps: string): SmapsEntry[] {
  const entries: SmapsEntry[] = [];
  for (const line of smaps.split("\n")) {
    const header = HEADER.exec(line);
    if (header) {
      entries.push({
        start: BigInt(`0x${header[1]}`),
        end: BigInt(`0x${header[2]}`),
        perms: header[3]!,
        path: header[4]!,
        kb: new Map(),
        flags: [],
      });
      continue;
    }
    const entry = entries.at(-1);
    if (!entry) continue;
    const field = KB_FIELD.exec(line);
    if (field) entry.kb.set(field[1]!, Number(field[2]));
    else if (line.startsWith("VmFlags:")) entry.flags = line.slice(8).trim().split(/\s+/);
  }
  return entries;
}

/**
 * The mappings of `smaps` whose resident pages can be dropped and read again unchanged: a file
 * (not `[heap]`, `[vdso]` or anonymous memory), private, not writable, not locked, with pages
 * resident and none of them the process's own copy.
 */
export function droppableMappings(smaps: string): DroppableMapping[] {
  return parseSmaps(smaps)
    .filter((e) =>
      e.path.startsWith("/") && e.perms[1] === "-" && e.perms[3] === "p" &&
      !e.flags.includes("lo") && e.kb.get("Anonymous") === 0 && (e.kb.get("Rss") ?? 0) > 0
    )
    .map((e) => ({ start: e.start, end: e.end, rss: e.kb.get("Rss")! * 1024, path: e.path }));
}

const MADV_DONTNEED = 4;
const O_RDONLY = 0;
const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  // Addresses as integers: pointer objects need `--allow-ffi` for every library, not only libc.
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "usize" },
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "usize" },
} as const;
type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let libc: Libc | undefined;

/** glibc's functions, from this architecture's entry of {@link GLIBC_PATHS}. */
function openLibc(): Libc {
  if (libc) return libc;
  const candidates = GLIBC_PATHS.filter((p) => p.includes(`/${Deno.build.arch}-linux-gnu/`));
  const path = candidates.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false; // not this layout of /usr
    }
  });
  if (!path) {
    throw new CodePagesError(`no GNU C library at ${candidates.join(" or ")}`);
  }
  try {
    libc = Deno.dlopen(path, LIBC_SYMBOLS).symbols;
  } catch (error) {
    throw new CodePagesError(
      `cannot call ${path}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  return libc;
}

/** The calling thread's errno, copied out of glibc's thread-local variable. */
function errno(c: Libc): number {
  const value = new Int32Array(1);
  c.memcpy(value, c.__errno_location(), 4n);
  return value[0]!;
}

/**
 * This process's smaps. Read through the C library: Deno reads nothing under `/proc/self`
 * without `--allow-all`, since `/proc/self/mem` could rewrite the process.
 */
function readSmaps(c: Libc): string {
  const fd = c.open(new TextEncoder().encode("/proc/self/smaps\0"), O_RDONLY);
  if (fd < 0) throw new CodePagesError(`cannot open /proc/self/smaps: errno ${errno(c)}`);
  try {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const chunk = new Uint8Array(65536);
      const n = Number(c.read(fd, chunk, BigInt(chunk.length)));
      if (n < 0) throw new CodePagesError(`cannot read /proc/self/smaps: errno ${errno(c)}`);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
    }
    const decoder = new TextDecoder();
    return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") +
      decoder.decode();
  } finally {
    c.close(fd);
  }
}

/**
 * Drops this process's resident pages of {@link droppableMappings}.
 * @returns the bytes that were resident in them.
 * @throws {CodePagesError} when glibc cannot be opened (no `--allow-ffi` for it) or `madvise`
 * refuses a mapping (the ones before it stay dropped, which is harmless).
 */
export function releaseCodePages(): number {
  const c = openLibc();
  let released = 0;
  for (const m of droppableMappings(readSmaps(c))) {
    if (c.madvise(m.start, m.end - m.start, MADV_DONTNEED) !== 0) {
      throw new CodePagesError(
        `madvise of ${m.path} (${m.start.toString(16)}-${m.end.toString(16)}) failed: errno ${
          errno(c)
        }`,
      );
    }
    released += m.rss;
  }
  return released;
}

/** This process's code pages. */
export const processCodePages: CodePages = { release: releaseCodePages };
