/**
 * A nats-server image for the test cluster, which reaches no registry: `FROM scratch` with
 * the nats-server this machine runs its tests with (the one on PATH, or
 * `$FLEET_NATS_SERVER_BIN`), its loader and libraries, found as the fleet image finds Deno's.
 * The chart starts it with `nats-server --config ...`, so the binary is on `PATH`.
 */
import { findExecutable } from "../adapters/process.ts";
import type { PodmanClient } from "../adapters/podman/mod.ts";
import { findLibrary, IMAGE_ARCHES, imageLibraries } from "../operator/image.ts";
import { readElf } from "../packaging/elf.ts";
import { NATS_SERVER_BIN_ENV } from "../sandbox/nats_server.ts";

/** The host's architecture: the only one this image is built for. */
const ARCH = "amd64";
const BIN_DIR = "/usr/local/bin";

/**
 * Builds `ref` (e.g. `localhost/fleet-nats:2.10.27`) into podman's storage.
 * @throws {Error} when nats-server is not found, or a library of it is not installed.
 */
export async function buildNatsImage(podman: PodmanClient, ref: string): Promise<void> {
  const binary = Deno.env.get(NATS_SERVER_BIN_ENV) ?? findExecutable("nats-server");
  if (binary === undefined) {
    throw new Error(`nats-server is not on PATH: run scripts/install.sh test`);
  }
  const data = await Deno.readFile(binary);
  const { machine, libraryDirs } = IMAGE_ARCHES[ARCH];
  const libraries = await imageLibraries(
    binary,
    readElf(data),
    ARCH,
    (name) => findLibrary(name, libraryDirs, machine),
  );
  const files: Record<string, Uint8Array> = { [`root${BIN_DIR}/nats-server`]: data };
  for (const library of libraries) files[`root${library.target}`] = library.data;
  const fileModes = Object.fromEntries(Object.keys(files).map((path) => [path, 0o755]));
  await podman.buildImage({
    tags: [ref],
    containerfile: `FROM scratch\nCOPY root/ /\nENV PATH=${BIN_DIR}\nUSER 65532\n`,
    files,
    fileModes,
    platform: `linux/${ARCH}`,
  });
}
