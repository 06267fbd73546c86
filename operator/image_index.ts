/**
 * Builds the `fleet` image for each architecture (operator/image.ts) with Podman and joins
 * them into one multi-arch image index (a manifest list), which `podman manifest push --all`
 * (or `PodmanClient.pushManifestList`) sends to a registry. Each image's steps only copy files, so
 * a foreign architecture builds without emulation.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type PodmanClient, tarArchive } from "../adapters/podman/mod.ts";
import { FleetError, UsageError } from "../core/errors.ts";
import { denoRuntime } from "../packaging/deno_runtime.ts";
import { fleetImageContext, type ImageArch } from "./image.ts";

/** A tag is what follows the last `:` after the last `/` (a registry port is before a `/`). */
const TAGGED = /:[\w][\w.-]{0,127}$/;

/**
 * The reference of the single-architecture image behind the index `name`:
 * `localhost/fleet:0.1.0` → `localhost/fleet:0.1.0-arm64`.
 *
 * @throws {UsageError} when `name` has no tag.
 */
export function archImageRef(name: string, arch: ImageArch): string {
  if (!TAGGED.test(name.slice(name.lastIndexOf("/") + 1))) {
    throw new UsageError(
      `Image name "${name}" has no tag: give one, e.g. "localhost/fleet:0.1.0"`,
    );
  }
  return `${name}-${arch}`;
}

/**
 * One layer of an image: bytes as stored, and gzip-compressed (a registry stores about that;
 * Podman's own gzip is a few percent larger).
 */
export interface LayerSize {
  /** `runtime` (deno and its libraries) or `app` (the program). */
  layer: string;
  bytes: number;
  gzipBytes: number;
}

/** One architecture's image in the index. */
export interface BuiltImage {
  arch: ImageArch;
  /** Its own reference (see {@linkcode archImageRef}). */
  ref: string;
  id: string;
  /** Uncompressed bytes, as Podman stores it. */
  size: number;
  layers: LayerSize[];
}

/** Options of {@linkcode buildImageIndex}. */
export interface ImageIndexOptions {
  podman: PodmanClient;
  /** The index's name, with a tag, e.g. `localhost/fleet:0.1.0`. */
  name: string;
  arches: ImageArch[];
  /** The image version label. */
  version: string;
  /** The bundled program (see {@linkcode bundleProgram}). */
  bundle: string;
  /** Where packaging/deno_runtime.ts caches the pinned runtimes (`~/.cache/fleet`). */
  cacheDir: string;
  /** Told when each architecture starts, for a progress line. */
  onArch?: (arch: ImageArch) => void;
}

/**
 * Builds one image per architecture from the pinned Deno runtime of that architecture
 * (fetched from npm on first use, checked against packaging/deno-runtime.sha512) and creates
 * the manifest list `name` of them, replacing an older list of that name.
 *
 * @throws {UsageError} when `name` has no tag.
 * @throws {TypeError} when `arches` is empty.
 * @throws {PackagingError} when no runtime is pinned for this Deno version, or it fails its hash.
 * @throws {ImageContextError} when a library of the runtime is not installed.
 * @throws {PodmanError} when a build or the manifest list fails.
 */
export async function buildImageIndex(options: ImageIndexOptions): Promise<BuiltImage[]> {
  if (options.arches.length === 0) throw new TypeError("Build the image for at least one arch");
  const built: BuiltImage[] = [];
  for (const arch of options.arches) {
    options.onArch?.(arch);
    const ref = archImageRef(options.name, arch);
    const context = await fleetImageContext({
      arch,
      denoBinary: await denoRuntime(arch, Deno.version.deno, options.cacheDir),
      bundle: options.bundle,
      version: options.version,
    });
    await options.podman.buildImage({ tags: [ref], platform: `linux/${arch}`, ...context });
    const image = await options.podman.inspectImage(ref);
    if (image === undefined) throw new FleetError("failure", `Podman lost the image ${ref}`);
    const layers: LayerSize[] = [];
    for (const layer of ["runtime", "app"]) {
      const files = Object.entries(context.files)
        .filter(([path]) => path.startsWith(`${layer}/`))
        .map(([path, data]) => ({ path: path.slice(layer.length + 1), data }));
      const tar = tarArchive(files);
      layers.push({ layer, bytes: tar.length, gzipBytes: await gzipSize(tar) });
    }
    built.push({ arch, ref, id: image.id, size: image.size, layers });
  }
  await options.podman.createManifestList(options.name, built.map((b) => b.ref));
  return built;
}

/** Bytes of `data` gzip-compressed. */
async function gzipSize(data: Uint8Array<ArrayBuffer>): Promise<number> {
  let size = 0;
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  for await (const chunk of stream) size += chunk.length;
  return size;
}

/** One line per image: its reference, platform, and sizes uncompressed and gzip-compressed. */
export function imageSizeLines(images: BuiltImage[]): string[] {
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  return images.map((image) => {
    const gzip = image.layers.reduce((sum, l) => sum + l.gzipBytes, 0);
    const layers = image.layers
      .map((l) => `${l.layer} ${mb(l.bytes)}, gzip ${mb(l.gzipBytes)}`)
      .join("; ");
    return `${image.ref}  linux/${image.arch}: ${mb(image.size)} uncompressed, ` +
      `~${mb(gzip)} compressed (${layers})`;
  });
}

/**
 * Bundles the program from its source (`deno bundle --minify main.ts`) into `dir/fleet.js`.
 *
 * @throws {FleetError} when this program was not run from its source tree (an installed,
 * bundled `fleet` cannot bundle itself), or `deno bundle` fails.
 */
export async function bundleProgram(dir: string): Promise<string> {
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  if (!import.meta.url.endsWith("/operator/image_index.ts")) {
    throw new FleetError(
      "failure",
      "The image is built from Fleet's source: run this command from a checkout " +
        "(deno task fleet operator image ...), not from an installed fleet",
    );
  }
  const out = `${dir}/fleet.js`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--minify", "--output", out, main],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new FleetError(
      "failure",
      `deno bundle ${main} failed: ${new TextDecoder().decode(result.stderr).trim()}`,
    );
  }
  return out;
}
