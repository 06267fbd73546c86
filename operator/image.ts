/**
 * The `fleet` container image, for one architecture: a build context for an image
 * `FROM scratch` holding only the pinned Deno runtime of that architecture (the `deno` binary of
 * the npm package `@deno/linux-<arch>-glibc`, see packaging/deno_runtime.ts), the shared
 * libraries it loads, and the bundled program (`deno bundle`). The same image runs the
 * operator (its default command) and the auth callout (`callout run ...`).
 *
 * The libraries are found without running anything: their names come from the ELF files'
 * `DT_NEEDED` entries (packaging/elf.ts), and the files from the directories where Debian puts
 * that architecture's libraries: the host's own for the host's architecture, or the cross
 * packages' (`libc6-arm64-cross`, `libgcc-s1-arm64-cross` install `/usr/aarch64-linux-gnu/lib`).
 * In the image the loader sits at the binary's `PT_INTERP` path and the libraries in
 * `/lib/<triplet>/`, a directory glibc's loader searches without an `ld.so.cache`.
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
import { ElfError, type ElfInfo, type ElfMachine, readElf } from "../packaging/elf.ts";
import type { DebArch } from "../packaging/deb.ts";
import { errorMessage, FleetError } from "../core/errors.ts";

/** An architecture the image is built for (Debian's and OCI's name). */
export type ImageArch = DebArch;

/** Where each architecture's libraries are found on a Debian build host, and go in the image. */
export const IMAGE_ARCHES: Record<ImageArch, {
  machine: ElfMachine;
  /** The multiarch directory name: libraries go to `/lib/<triplet>/` in the image. */
  triplet: string;
  /** Searched in order; the first file of the right machine wins. */
  libraryDirs: string[];
  /** The Debian packages that provide them on a host of another architecture. */
  crossPackages: string;
}> = {
  amd64: {
    machine: "x86_64",
    triplet: "x86_64-linux-gnu",
    libraryDirs: [
      "/lib/x86_64-linux-gnu",
      "/usr/lib/x86_64-linux-gnu",
      "/usr/x86_64-linux-gnu/lib",
    ],
    crossPackages: "libc6-amd64-cross libgcc-s1-amd64-cross",
  },
  arm64: {
    machine: "aarch64",
    triplet: "aarch64-linux-gnu",
    libraryDirs: [
      "/lib/aarch64-linux-gnu",
      "/usr/lib/aarch64-linux-gnu",
      "/usr/aarch64-linux-gnu/lib",
    ],
    crossPackages: "libc6-arm64-cross libgcc-s1-arm64-cross",
  },
};

/** Default (non-root) user of the image; overridable at run time. */
export const FLEET_IMAGE_USER = 65532;

/** Where the runtime and the program land in the image. */
export const FLEET_IMAGE_PATHS = {
  deno: "/usr/bin/deno",
  bundle: "/app/fleet.js",
  denoDir: "/tmp/deno",
} as const;

/** Options of {@linkcode fleetImageContext}. */
export interface FleetImageOptions {
  arch: ImageArch;
  /** Path of the `deno` executable for `arch` (packaging/deno_runtime.ts `denoRuntime()`). */
  denoBinary: string;
  /** Path of the bundled program, the output of `deno bundle ... main.ts`. */
  bundle: string;
  /** The `org.opencontainers.image.version` label. @default the version in deno.json */
  version?: string;
  /** The image's default user (a number: the image has no /etc/passwd). @default 65532 */
  user?: number;
  /** Overrides {@linkcode IMAGE_ARCHES}' directories, e.g. for a sysroot elsewhere. */
  libraryDirs?: string[];
}

/** A podman/buildah build context, in the shape `PodmanClient.buildImage` takes. */
export interface FleetImageContext {
  /** Text of the Containerfile (not part of `files`). */
  containerfile: string;
  /** Relative path in the context → content. `runtime/` and `app/` are one layer each. */
  files: Record<string, Uint8Array>;
  /** Permission bits per path of `files`. */
  fileModes: Record<string, number>;
}

/**
 * The image could not be put together from the given files: a missing or unreadable file,
 * a binary for another architecture, or a shared library that is not installed.
 */
export class ImageContextError extends FleetError {
  override name = "ImageContextError";
  /** The file the problem is about. */
  readonly path: string;
  /** The reason, without the path. */
  readonly reason: string;

  /**
   * @param path the file the problem is about.
   * @param reason what is wrong with it and what to do.
   */
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super("failure", `Cannot build the fleet image from "${path}": ${reason}`, options);
    this.path = path;
    this.reason = reason;
  }
}

/**
 * Builds the context of the image for `options.arch`: `runtime/` (deno, its loader and
 * libraries, copied to `/` in one layer), then `app/fleet.js` in a layer of its own, so a new
 * program version changes only the small top layer. Reads files only.
 *
 * @throws {ImageContextError} when a file is missing or unreadable, the binary is not an ELF
 * executable for `arch`, or one of its libraries is in none of the library directories.
 * @throws {TypeError} for a version or user that cannot go into a Containerfile.
 */
export async function fleetImageContext(options: FleetImageOptions): Promise<FleetImageContext> {
  const version = options.version ?? denoJson.version;
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) {
    throw new TypeError(
      `Invalid image version "${version}": use letters, digits, '.', '+', '_' and '-'`,
    );
  }
  const user = options.user ?? FLEET_IMAGE_USER;
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
  add(`runtime${FLEET_IMAGE_PATHS.deno}`, deno, 0o755);
  const dirs = options.libraryDirs ?? IMAGE_ARCHES[options.arch].libraryDirs;
  const libraries = await imageLibraries(
    options.denoBinary,
    elfOf(options.denoBinary, deno),
    options.arch,
    (name) => findLibrary(name, dirs, IMAGE_ARCHES[options.arch].machine),
  );
  for (const library of libraries) add(`runtime${library.target}`, library.data, 0o755);
  add(`app/${basename(FLEET_IMAGE_PATHS.bundle)}`, bundle, 0o644);

  return { containerfile: containerfile(version, user), files, fileModes };
}

function containerfile(version: string, user: number): string {
  const { deno, bundle, denoDir } = FLEET_IMAGE_PATHS;
  const entrypoint = [deno, "run", "-A", "--no-config", bundle];
  const cmd = ["operator", "run", "--source", "kube"];
  return `# Fleet: the bundled program run by the Deno runtime, nothing else. The default command
# runs the operator; \`callout run ...\` runs the auth callout.
FROM scratch
COPY runtime/ /
COPY app/${basename(bundle)} ${bundle}
ENV DENO_DIR=${denoDir} \\
    DENO_NO_UPDATE_CHECK=1 \\
    DENO_USE_CGROUPS=1
LABEL org.opencontainers.image.title="fleet" \\
      org.opencontainers.image.description="Fleet operator (default command) and auth callout (callout run)" \\
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
    const detail = errorMessage(error);
    throw new ImageContextError(path, `cannot read ${what} (${detail})`, { cause: error });
  }
}

function elfOf(path: string, bytes: Uint8Array): ElfInfo {
  try {
    return readElf(bytes);
  } catch (error) {
    if (!(error instanceof ElfError)) throw error;
    throw new ImageContextError(path, `${error.message}, not an executable`, { cause: error });
  }
}

/** A library file found for a name, with what its ELF header says. */
export interface FoundLibrary {
  path: string;
  data: Uint8Array;
  elf: ElfInfo;
}

/** A file of the image's runtime layer: where it comes from and where it goes. */
export interface ImageLibrary {
  source: string;
  /** Absolute path in the image. */
  target: string;
  data: Uint8Array;
}

/**
 * The loader and every library `binary` needs, transitively, with where each goes in the
 * image: the loader at the binary's `PT_INTERP` path, the others in `/lib/<triplet>/`.
 *
 * @param find looks a library name up (the only I/O, so a test can pass a table).
 * @throws {ImageContextError} when `binary` is not a dynamic executable for `arch`, or a
 * library is not found (naming the Debian packages that provide it).
 */
export async function imageLibraries(
  binaryPath: string,
  binary: ElfInfo,
  arch: ImageArch,
  find: (name: string) => Promise<FoundLibrary | undefined>,
): Promise<ImageLibrary[]> {
  const { machine, triplet, crossPackages } = IMAGE_ARCHES[arch];
  if (binary.machine !== machine) {
    throw new ImageContextError(
      binaryPath,
      `it is a ${binary.machine} executable, but the ${arch} image needs an ${machine} one`,
    );
  }
  const loader = binary.interpreter;
  if (loader === undefined) return []; // statically linked
  const queue = [basename(loader), ...binary.needed];
  const seen = new Set<string>();
  const out: ImageLibrary[] = [];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    if (seen.has(name)) continue;
    seen.add(name);
    const found = await find(name);
    if (found === undefined) {
      throw new ImageContextError(
        binaryPath,
        `its library "${name}" (${machine}) is not installed; on Debian install ` +
          `${crossPackages} (for an image of another architecture than this host's)`,
      );
    }
    out.push({
      source: found.path,
      target: name === basename(loader) ? loader : `/lib/${triplet}/${name}`,
      data: found.data,
    });
    queue.push(...found.elf.needed);
  }
  return out;
}

/** The first file named `name` in `dirs` that is an ELF file for `machine`. */
export async function findLibrary(
  name: string,
  dirs: string[],
  machine: ElfMachine,
): Promise<FoundLibrary | undefined> {
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    let data: Uint8Array;
    try {
      data = await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    let elf: ElfInfo;
    try {
      elf = readElf(data);
    } catch (error) {
      if (error instanceof ElfError) continue; // e.g. a linker script of the same name
      throw error;
    }
    if (elf.machine === machine) return { path, data, elf };
  }
  return undefined;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
