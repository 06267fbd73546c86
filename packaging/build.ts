/**
 * `deno task package`: builds `dist/fleet_<version>_amd64.deb` and `..._arm64.deb`, each with
 * the Deno runtime for its architecture (from npm), the bundled program (`deno bundle`), the
 * `/usr/bin/fleet` launcher and the `fleet-agent` systemd unit. Needs `dpkg-deb` and `npm`.
 *
 * Usage: deno run -A packaging/build.ts [--out DIR] [--arch amd64,arm64]
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  agentUnit,
  controlFile,
  DEB_ARCHES,
  type DebArch,
  debFileName,
  DebPaths,
  launcherScript,
  PackagingError,
  postinstScript,
  prermScript,
} from "./deb.ts";
import { denoRuntime, runTool } from "./deno_runtime.ts";
import { createLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { fleetCacheDir } from "../adapters/cache_dir.ts";

// Without the trailing slash fileURLToPath keeps, so `${ROOT}/x` reads well in messages.
const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

export interface BuiltPackage {
  arch: DebArch;
  path: string;
}

async function writeFile(root: string, path: string, text: string, mode: number) {
  const full = `${root}/${path}`;
  await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(full, text);
  await Deno.chmod(full, mode);
}

async function sizeKb(dir: string): Promise<number> {
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) bytes += (await sizeKb(path)) * 1024;
    else bytes += (await Deno.lstat(path)).size;
  }
  return bytes / 1024;
}

/** The version the packages carry: deno.json's, which `fleet --version` prints too. */
export async function projectVersion(): Promise<string> {
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  return String(denoJson.version);
}

/** Builds one package per architecture into `outDir`; returns their paths. */
export async function buildPackages(
  options: { outDir: string; arches: DebArch[]; cacheDir?: string },
): Promise<BuiltPackage[]> {
  const version = await projectVersion();
  const cacheDir = options.cacheDir ?? fleetCacheDir();
  await Deno.mkdir(options.outDir, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "fleet-package-" });
  try {
    // Split at main.ts's dynamic imports: `fleet agent run` loads the agent's chunks only
    // (one bundle of everything made the idle agent 96 MB resident instead of 69 MB).
    const app = `${work}/app`;
    await runTool(Deno.execPath(), [
      "bundle",
      "--quiet",
      "--minify",
      "--code-splitting",
      "--outdir",
      app,
      `${ROOT}/main.ts`,
    ], ROOT);
    const built: BuiltPackage[] = [];
    for (const arch of options.arches) {
      const root = `${work}/${arch}`;
      const runtime = await denoRuntime(arch, Deno.version.deno, cacheDir);
      await Deno.mkdir(`${root}/usr/lib/fleet`, { recursive: true });
      await Deno.copyFile(runtime, `${root}/${DebPaths.runtime}`);
      await Deno.chmod(`${root}/${DebPaths.runtime}`, 0o755);
      await Deno.mkdir(`${root}/${DebPaths.programDir}`, { recursive: true });
      for await (const chunk of Deno.readDir(app)) {
        const target = `${root}/${DebPaths.programDir}/${chunk.name}`;
        await Deno.copyFile(`${app}/${chunk.name}`, target);
        await Deno.chmod(target, 0o644);
      }
      await writeFile(root, DebPaths.launcher, launcherScript(), 0o755);
      await writeFile(root, DebPaths.unit, agentUnit(), 0o644);
      await Deno.mkdir(`${root}/${DebPaths.configDir}`, { recursive: true });
      const installedSizeKb = await sizeKb(root);
      await writeFile(
        root,
        "DEBIAN/control",
        controlFile({ version, arch, installedSizeKb }),
        0o644,
      );
      await writeFile(root, "DEBIAN/postinst", postinstScript(), 0o755);
      await writeFile(root, "DEBIAN/prerm", prermScript(), 0o755);
      const path = `${options.outDir}/${debFileName(version, arch)}`;
      await runTool("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", root, path], ROOT);
      built.push({ arch, path });
    }
    return built;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) {
  const log = createLogger();
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: `${ROOT}/dist` }, arch: { type: "string" } },
  });
  const arches = (values.arch ?? Object.keys(DEB_ARCHES).join(",")).split(",");
  for (const arch of arches) {
    if (!(arch in DEB_ARCHES)) {
      log.error(`Unknown --arch "${arch}": choose from ${Object.keys(DEB_ARCHES).join(", ")}`);
      Deno.exit(2);
    }
  }
  try {
    for (const p of await buildPackages({ outDir: values.out, arches: arches as DebArch[] })) {
      printLine(`built ${p.path}`);
    }
  } catch (err) {
    if (!(err instanceof PackagingError)) throw err;
    log.error(err.message);
    Deno.exit(1);
  }
}
