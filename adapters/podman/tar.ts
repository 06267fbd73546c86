/**
 * A minimal POSIX ustar writer: just enough to send a build context to `POST /libpod/build`
 * without a dependency or a `tar` binary on the device.
 */

/** One regular file of an archive. */
export interface TarFile {
  /** Relative path with `/` separators, e.g. `www/index.html`. */
  path: string;
  data: Uint8Array;
  /** Permission bits. @default 0o644 */
  mode?: number;
}

const BLOCK = 512;
const encoder = new TextEncoder();

/**
 * Builds an uncompressed ustar archive of regular files (owner 0:0, mtime 0, so the same
 * input always gives the same bytes). Parent directories are implied by the paths.
 *
 * @throws {TypeError} for an absolute, empty, `..`-containing, duplicate or over-long
 * path, an invalid mode, or a file larger than ustar's 8 GiB limit.
 */
export function tarArchive(files: ReadonlyArray<TarFile>): Uint8Array<ArrayBuffer> {
  const seen = new Set<string>();
  let total = 2 * BLOCK; // the end-of-archive marker: two zero blocks
  for (const file of files) {
    checkPath(file.path);
    if (seen.has(file.path)) throw new TypeError(`Duplicate tar path "${file.path}"`);
    seen.add(file.path);
    total += BLOCK + padded(file.data.length);
  }

  const out = new Uint8Array(total); // zero-filled, so padding and the end marker are free
  let offset = 0;
  for (const file of files) {
    out.set(header(file), offset);
    out.set(file.data, offset + BLOCK);
    offset += BLOCK + padded(file.data.length);
  }
  return out;
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

function checkPath(path: string): void {
  const segments = path.split("/");
  if (
    path.length === 0 || path.startsWith("/") || path.includes("\0") ||
    segments.some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new TypeError(
      `Invalid tar path "${path}": use a relative path without empty, "." or ".." segments`,
    );
  }
}

function header(file: TarFile): Uint8Array {
  const mode = file.mode ?? 0o644;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new TypeError(`Invalid tar mode ${mode} for "${file.path}": use 0 to 0o7777`);
  }
  const { name, prefix } = splitPath(file.path);
  const h = new Uint8Array(BLOCK);
  h.set(name, 0);
  writeOctal(h, 100, 8, mode);
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, file.data.length, file.path);
  writeOctal(h, 136, 12, 0); // mtime
  h[156] = 0x30; // typeflag '0': regular file
  h.set(encoder.encode("ustar\0"), 257);
  h.set(encoder.encode("00"), 263);
  h.set(prefix, 345);

  // The checksum is the byte sum of the header with the checksum field read as spaces,
  // written as six octal digits, NUL, space.
  h.fill(0x20, 148, 156);
  const sum = h.reduce((acc, byte) => acc + byte, 0);
  writeOctal(h, 148, 7, sum);
  h[155] = 0x20;
  return h;
}

/** ustar keeps 100 bytes of name plus 155 bytes of prefix, split at a `/`. */
function splitPath(path: string): { name: Uint8Array; prefix: Uint8Array } {
  const bytes = encoder.encode(path);
  if (bytes.length <= 100) return { name: bytes, prefix: new Uint8Array() };
  for (let i = bytes.length - 1; i > 0; i--) {
    if (bytes[i] !== 0x2f) continue;
    const prefix = bytes.subarray(0, i);
    const name = bytes.subarray(i + 1);
    if (name.length > 100) break; // later slashes only make the name longer
    if (prefix.length <= 155) return { name, prefix };
  }
  throw new TypeError(`Tar path "${path}" is too long for ustar (100 + 155 bytes at a "/")`);
}

/** Zero-padded octal digits filling `width - 1` bytes, then a NUL. */
function writeOctal(h: Uint8Array, at: number, width: number, value: number, path?: string) {
  const digits = value.toString(8).padStart(width - 1, "0");
  if (digits.length > width - 1) {
    throw new TypeError(`File "${path ?? "?"}" is too large for ustar (${value} bytes)`);
  }
  h.set(encoder.encode(digits), at);
  h[at + width - 1] = 0;
}
