/**
 * The operator's container image: a build context for an image `FROM scratch` holding only
 * the Deno runtime (the `deno` binary of the npm package `@deno/linux-<arch>-glibc`), the
 * shared libraries it links against, copied from the host at their original paths, and the
 * bundled program (`deno bundle` output). `deno compile` would make one static-ish file,
 * but it downloads its `denort` runtime at build time, which these machines cannot.
 *
 * The image has no `/etc/passwd` and no shell. It runs as UID 65532 by default; OpenShift
 * replaces that with a UID from the namespace's range, which works because nothing in the
 * image depends on the user. `/tmp` (and `DENO_DIR` below it) should be a writable volume;
 * without one Deno only skips its code cache. `DENO_USE_CGROUPS=1` sizes the V8 heap from
 * the container's memory limit rather than the node's memory.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** Default (non-root) user of the image; overridable at run time. */
export const OPERATOR_IMAGE_USER = 65532;

/** Where the runtime and the program land in the image. */
export const OPERATOR_IMAGE_PATHS = {
  deno: "/usr/bin/deno",
  bundle: "/app/fleet.js",
  denoDir: "/tmp/deno",
} as const;

/** Options of {@linkcode operatorImageContext}. */
export interface OperatorImageOptions {
  /**
   * Path of the `deno` executable to put in the image, e.g.
   * `node_modules/@deno/linux-x64-glibc/deno` (see {@linkcode findDenoBinary}). It must be
   * for the host's architecture: its libraries are resolved with the host's `ldd`.
   */
  denoBinary: string;
  /** Path of the bundled program, the output of `deno bundle ... main.ts`. */
  bundle: string;
  /** The `org.opencontainers.image.version` label. @default the version in deno.json */
  version?: string;
  /** The image's default user (a number: the image has no /etc/passwd). @default 65532 */
  user?: number;
}

/** A podman/buildah build context, in the shape `PodmanClient.buildImage` takes. */
export interface OperatorImageContext {
  /** Text of the Containerfile (not part of `files`). */
  containerfile: string;
  /** Relative path in the context → content. */
  files: Record<string, Uint8Array>;
  /** Permission bits per path of `files`. */
  fileModes: Record<string, number>;
}

/**
 * The image could not be put together from the given files: a missing or unreadable file,
 * a binary for another architecture, or a shared library `ldd` cannot find.
 */
export class ImageContextError extends Error {
  /** The file the problem is about. */
  readonly path: string;
  /** The reason, without the path. */
  readonly reason: string;

  /**
   * @param path the file the problem is about.
   * @param reason what is wrong with it and what to do.
   */
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super(`Cannot build the operator image from "${path}": ${reason}`, options);
    this.name = "ImageContextError";
    this.path = path;
    this.reason = reason;
  }
}

/**
 * Builds the context of the operator image: `runtime/` (deno and its libraries, copied to
 * `/` in one layer), then `app/fleet.js` in a layer of its own, so a new program version
 * changes only the small top layer.
 *
 * Runs `ldd` on the deno binary (the only process this module spawns); needs
 * `--allow-run=ldd` and read access to the binary, the bundle and the libraries.
 *
 * @returns the Containerfile, the files and their modes, for `PodmanClient.buildImage`.
 * @throws {ImageContextError} when a file is missing or unreadable, the binary is not an
 * ELF executable for this host's architecture, or `ldd` fails or misses a library.
 * @throws {TypeError} for a version or user that cannot go into a Containerfile.
 *
 * @example
 * ```ts
 * const context = await operatorImageContext({
 *   denoBinary: Deno.execPath(),
 *   bundle: "dist/fleet.js",
 * });
 * await podman.buildImage({ tags: ["localhost/fleet-operator:0.1.0"], ...context });
 * ```
 */
export async function operatorImageContext(
  options: OperatorImageOptions,
): Promise<OperatorImageContext> {
  const version = options.version ?? denoJson.version;
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) {
    throw new TypeError(
      `Invalid image version "${version}": use letters, digits, '.', '+', '_' and '-'`,
    );
  }
  const user = options.user ?? OPERATOR_IMAGE_USER;
  if (!Number.isInteger(user) || user < 0 || user > 0xffff_fffe) {
    throw new TypeError(`Invalid image user ${user}: use a numeric UID`);
  }

  const deno = await readInput(options.denoBinary, "the deno binary");
  const bundle = await readInput(options.bundle, "the bundle");
  if (bundle.length === 0) throw new ImageContextError(options.bundle, "the bundle is empty");

  const files: Record<string, Uint8Array> = {};
  const fileModes: Record<string, number> = {};
  const add = (path: string, data: Uint8Array, mode: number) => {
    files[path] = data;
    fileModes[path] = mode;
  };
  add(`runtime${OPERATOR_IMAGE_PATHS.deno}`, deno, 0o755);
  for (const library of await sharedLibraries(options.denoBinary, deno)) {
    add(`runtime${library}`, await readInput(library, "a shared library of deno"), 0o755);
  }
  add(`app/${basename(OPERATOR_IMAGE_PATHS.bundle)}`, bundle, 0o644);

  return { containerfile: containerfile(version, user), files, fileModes };
}

function containerfile(version: string, user: number): string {
  const { deno, bundle, denoDir } = OPERATOR_IMAGE_PATHS;
  const entrypoint = [deno, "run", "-A", "--no-config", bundle];
  const cmd = ["operator", "run", "--source", "kube"];
  return `# The Fleet operator: the bundled program run by the Deno runtime, nothing else.
FROM scratch
COPY runtime/ /
COPY app/${basename(bundle)} ${bundle}
ENV DENO_DIR=${denoDir} \\
    DENO_NO_UPDATE_CHECK=1 \\
    DENO_USE_CGROUPS=1
LABEL org.opencontainers.image.title="fleet-operator" \\
      org.opencontainers.image.description="Fleet operator (fleet operator run)" \\
      org.opencontainers.image.version="${version}"
USER ${user}
ENTRYPOINT ${JSON.stringify(entrypoint).replaceAll(",", ", ")}
CMD ${JSON.stringify(cmd).replaceAll(",", ", ")}
`;
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ImageContextError(path, `${what} does not exist`, { cause: error });
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new ImageContextError(path, `${what} is a directory, not a file`, { cause: error });
    }
    const detail = error instanceof Error ? error.message : String(error);
    throw new ImageContextError(path, `cannot read ${what} (${detail})`, { cause: error });
  }
}

/**
 * The absolute paths of the shared libraries an executable loads, its dynamic loader
 * included, as the host's `ldd` resolves them (symbolic links not followed: each is copied
 * to the path the loader looks for). Empty for a static executable.
 *
 * @param binary path of an ELF executable for this host's architecture.
 * @param bytes its content, when already read.
 * @throws {ImageContextError} when it is not an ELF executable for this host, `ldd` cannot
 * run, or a library is not found.
 */
export async function sharedLibraries(binary: string, bytes?: Uint8Array): Promise<string[]> {
  const elf = readElf(binary, bytes ?? await readInput(binary, "the executable"));
  const host = Deno.build.arch;
  if (elf.arch !== host) {
    throw new ImageContextError(
      binary,
      `it is a ${elf.arch} executable, but this ${host} host's ldd can only resolve ` +
        `libraries of ${host} executables; build the image on a ${elf.arch} machine`,
    );
  }
  if (elf.interpreter === undefined) return []; // statically linked

  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("ldd", {
      args: [binary],
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? '"ldd" is not on PATH; install it (apt-get install libc-bin)'
      : `cannot run ldd (${error instanceof Error ? error.message : String(error)})`;
    throw new ImageContextError(binary, reason, { cause: error });
  }
  const decoder = new TextDecoder();
  if (!output.success) {
    const stderr = decoder.decode(output.stderr).trim() || decoder.decode(output.stdout).trim();
    throw new ImageContextError(binary, `ldd failed with code ${output.code}: ${stderr}`);
  }
  const libraries = parseLdd(decoder.decode(output.stdout), binary);
  // ldd lists the loader too; make sure the one the binary names is there whatever it said.
  if (!libraries.includes(elf.interpreter)) libraries.push(elf.interpreter);
  return libraries;
}

/**
 * Reads the output of glibc's `ldd`: the resolved path of every library and the loader,
 * without the kernel's vDSO, without duplicates, in order.
 *
 * @param output what `ldd` printed (in the C locale).
 * @param binary the executable, for error messages.
 * @throws {ImageContextError} when a library is `not found` or a line is not understood.
 */
export function parseLdd(output: string, binary: string): string[] {
  const paths: string[] = [];
  for (const raw of output.split("\n")) {
    const line = raw.trim();
    if (line === "" || /^statically linked$/.test(line)) continue;
    const missing = /^(\S+) => not found$/.exec(line);
    if (missing) {
      throw new ImageContextError(
        binary,
        `ldd cannot find its library "${missing[1]}"; install it on this host`,
      );
    }
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
    const path = /^(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/.exec(line)?.[1];
    if (path !== undefined) {
      if (!paths.includes(path)) paths.push(path);
      continue;
    }
    // The vDSO has no file: `linux-vdso.so.1 (0x...)`, or `linux-vdso.so.1 =>  (0x...)`.
    if (/^\S+ (?:=>\s+)?\(0x[0-9a-f]+\)$/.test(line)) continue;
    throw new ImageContextError(
      binary,
      `ldd printed a line this program does not understand: "${line}"`,
    );
  }
  return paths;
}

/** What the image needs to know of an ELF executable. */
interface ElfInfo {
  arch: typeof Deno.build.arch | "other";
  /** The PT_INTERP path (dynamic loader); undefined when statically linked. */
  interpreter: string | undefined;
}

const ELF_MACHINES: Record<number, typeof Deno.build.arch> = { 0x3e: "x86_64", 0xb7: "aarch64" };

function readElf(path: string, elf: Uint8Array): ElfInfo {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.length < 64 || view.getUint32(0) !== 0x7f454c46 || elf[4] !== 2) {
    throw new ImageContextError(path, "it is not a 64-bit ELF executable (the deno binary?)");
  }
  const little = elf[5] === 1;
  const arch = ELF_MACHINES[view.getUint16(0x12, little)] ?? "other";
  const phoff = Number(view.getBigUint64(0x20, little));
  const phentsize = view.getUint16(0x36, little);
  const phnum = view.getUint16(0x38, little);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 0x30 > elf.length) break;
    if (view.getUint32(at, little) !== 3 /* PT_INTERP */) continue;
    const offset = Number(view.getBigUint64(at + 0x08, little));
    const size = Number(view.getBigUint64(at + 0x20, little));
    const bytes = elf.subarray(offset, offset + size);
    const end = bytes.indexOf(0);
    return {
      arch,
      interpreter: new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end)),
    };
  }
  return { arch, interpreter: undefined };
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Looks for the `deno` binary of the npm package `@deno/linux-<arch>-glibc`: beside the
 * running deno when it came from the `deno` npm package, under `./node_modules`, or in the
 * Deno npm cache (`$DENO_DIR/npm/registry.npmjs.org`, newest version first).
 *
 * @param arch the image's architecture. @default Deno.build.arch
 * @returns its path, or undefined when none is found.
 */
export async function findDenoBinary(
  arch: typeof Deno.build.arch = Deno.build.arch,
): Promise<string | undefined> {
  const pkg = `@deno/linux-${arch === "aarch64" ? "arm64" : "x64"}-glibc`;
  const exec = Deno.execPath();
  const execDir = exec.slice(0, exec.lastIndexOf("/"));
  const candidates = [
    `${execDir}/node_modules/${pkg}/deno`, // npm i -g deno: .../deno/node_modules/@deno/...
    `${execDir}/../${pkg}/deno`, // the same, hoisted
    `${Deno.cwd()}/node_modules/${pkg}/deno`,
  ];
  const home = Deno.env.get("HOME");
  const cacheHome = Deno.env.get("XDG_CACHE_HOME") ?? (home ? `${home}/.cache` : undefined);
  const denoDir = Deno.env.get("DENO_DIR") ?? (cacheHome ? `${cacheHome}/deno` : undefined);
  if (denoDir !== undefined) {
    const cache = `${denoDir}/npm/registry.npmjs.org/${pkg}`;
    const versions: string[] = [];
    try {
      for await (const entry of Deno.readDir(cache)) {
        if (entry.isDirectory) versions.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    versions.sort(compareVersions).reverse();
    candidates.push(...versions.map((v) => `${cache}/${v}/deno`));
  }

  for (const candidate of candidates) {
    try {
      if ((await Deno.stat(candidate)).isFile) return candidate;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return undefined;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const pb = b.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
