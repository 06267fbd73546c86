/**
 * The Deno runtime a package ships, for either architecture, from npm (the only registry
 * this project may use: Deno's own release downloads are out of reach here). Cached under
 * `<cache root>/deno-runtime-<version>/<arch>/deno` (the root is `~/.cache/fleet` unless the
 * build is given another). Every runtime, fetched or cached, must have the SHA-512 pinned for
 * its version and architecture in `deno-runtime.sha512`, or no package is built with it.
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { DEB_ARCHES, type DebArch, PackagingError } from "./deb.ts";

/**
 * The pins, in `sha512sum` format: `<hex>  <version>/<arch>/deno` per line. `scripts/install.sh`
 * checks the Deno it installs against the same file.
 */
export const RUNTIME_PINS_PATH = fileURLToPath(new URL("./deno-runtime.sha512", import.meta.url));

/**
 * Runs a build tool in `cwd`.
 *
 * @throws {PackagingError} with the tool's stderr when it fails.
 */
export async function runTool(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new PackagingError(
      `${cmd} ${args.join(" ")} failed (exit ${out.code}): ` +
        new TextDecoder().decode(out.stderr).trim(),
    );
  }
}

/**
 * The SHA-512 (hex) pinned for the runtime of `version` on `arch`.
 *
 * @throws {PackagingError} when none is pinned.
 */
export async function pinnedSha512(
  arch: DebArch,
  version: string,
  pinsPath = RUNTIME_PINS_PATH,
): Promise<string> {
  const name = `${version}/${arch}/deno`;
  for (const line of (await Deno.readTextFile(pinsPath)).split("\n")) {
    const [hex, file] = line.trim().split(/\s+\*?/);
    if (file === name && /^[0-9a-f]{128}$/.test(hex ?? "")) return hex!;
  }
  throw new PackagingError(
    `No SHA-512 is pinned for the Deno ${version} runtime on ${arch} in ${pinsPath}, so no ` +
      `package is built with it: build with the Deno version pinned there, or pin this one ` +
      `(sha512sum of package/deno in the npm tarball of ${
        DEB_ARCHES[arch].denoPackage
      }@${version})`,
  );
}

export async function sha512File(path: string): Promise<string> {
  const hash = createHash("sha512");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** @throws {PackagingError} naming both hashes and what to do, when `exe` is not the pinned file. */
async function checkPinned(
  exe: string,
  pin: { hex: string; path: string },
  about: string,
  fix: string,
) {
  const actual = await sha512File(exe);
  if (actual === pin.hex) return;
  throw new PackagingError(
    `${about} has SHA-512 ${actual.slice(0, 16)}…, not the ${pin.hex.slice(0, 16)}… pinned in ` +
      `${pin.path}: refusing to package it. ${fix}`,
  );
}

/**
 * Path of the `deno` executable for `arch`, fetched with `npm pack` on first use, and checked
 * against its pinned SHA-512 each time.
 *
 * @throws {PackagingError} when no hash is pinned for it, or the runtime is not the pinned one.
 */
export async function denoRuntime(
  arch: DebArch,
  version: string,
  cacheRoot: string,
  pinsPath = RUNTIME_PINS_PATH,
): Promise<string> {
  const pin = { hex: await pinnedSha512(arch, version, pinsPath), path: pinsPath };
  const dir = `${cacheRoot}/deno-runtime-${version}/${arch}`;
  const exe = `${dir}/deno`;
  try {
    if ((await Deno.stat(exe)).isFile) {
      await checkPinned(
        exe,
        pin,
        `The cached Deno ${version} runtime for ${arch} (${exe})`,
        `Something changed it after it was fetched; delete it to fetch it again from npm.`,
      );
      return exe;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(cacheRoot, { recursive: true });
  // Beside the cache, so the final rename stays on one file system.
  const work = await Deno.makeTempDir({ dir: cacheRoot, prefix: "deno-npm-" });
  try {
    const spec = `${DEB_ARCHES[arch].denoPackage}@${version}`;
    await runTool("npm", ["pack", "--silent", spec, "--pack-destination", work], work);
    const tgz = [...Deno.readDirSync(work)].find((e) => e.name.endsWith(".tgz"));
    if (!tgz) throw new PackagingError(`npm pack ${spec} wrote no tarball`);
    await runTool("tar", ["-xzf", tgz.name, "package/deno"], work);
    await checkPinned(
      `${work}/package/deno`,
      pin,
      `The deno executable in ${spec} from npm`,
      "Find out why npm serves another file before pinning its hash.",
    );
    await Deno.mkdir(dir, { recursive: true });
    // Renamed into place last, so an interrupted fetch never leaves a partial runtime.
    await Deno.chmod(`${work}/package/deno`, 0o755);
    await Deno.rename(`${work}/package/deno`, exe);
    return exe;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
