/**
 * The Deno runtime a package ships, for either architecture, from npm (the only registry
 * this project may use: Deno's own release downloads are out of reach here). Cached under
 * `<cache root>/deno-runtime-<version>/<arch>/deno` (the root is `~/.cache/fleet` unless the
 * build is given another).
 */
import { DEB_ARCHES, type DebArch, PackagingError } from "./deb.ts";

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

/** Path of the `deno` executable for `arch`, fetched with `npm pack` on first use. */
export async function denoRuntime(
  arch: DebArch,
  version: string,
  cacheRoot: string,
): Promise<string> {
  const dir = `${cacheRoot}/deno-runtime-${version}/${arch}`;
  const exe = `${dir}/deno`;
  try {
    if ((await Deno.stat(exe)).isFile) return exe;
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
    await Deno.mkdir(dir, { recursive: true });
    // Renamed into place last, so an interrupted fetch never leaves a partial runtime.
    await Deno.chmod(`${work}/package/deno`, 0o755);
    await Deno.rename(`${work}/package/deno`, exe);
    return exe;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
