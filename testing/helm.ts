/**
 * The real `helm` (v3) the chart tests run: built by scripts/build-helm.sh from the Go module
 * pinned in fixtures/helm into `<fleetCacheDir()>/helm-<version>/helm`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { fleetCacheDir } from "../adapters/cache_dir.ts";

/** Overrides the folder holding `helm` (as scripts/build-helm.sh's FLEET_HELM_BIN_DIR). */
export const HELM_BIN_DIR_ENV = "FLEET_HELM_BIN_DIR";

/**
 * Path of the `helm` binary: in `$FLEET_HELM_BIN_DIR`, else in
 * `<fleetCacheDir()>/helm-<version>/`, the version pinned in fixtures/helm/go.mod.
 */
export function helmBin(): string {
  const override = Deno.env.get(HELM_BIN_DIR_ENV);
  if (override) return `${override}/helm`;
  const goMod = Deno.readTextFileSync(
    fileURLToPath(new URL("../fixtures/helm/go.mod", import.meta.url)),
  );
  const version = /^\s*(?:require\s+)?helm\.sh\/helm\/v3 (v\S+)$/m.exec(goMod)?.[1];
  if (version === undefined) throw new Error("fixtures/helm/go.mod does not pin helm.sh/helm/v3");
  return `${fleetCacheDir()}/helm-${version}/helm`;
}

/** What a `helm` run printed, and whether it succeeded. */
export interface HelmResult {
  success: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs `helm` with `args`, with its own cache, config and data folders under a temporary
 * directory, so no user's repositories or plugins take part.
 *
 * @throws {Error} when the binary is missing, naming the script that builds it.
 */
export async function runHelm(args: string[]): Promise<HelmResult> {
  const bin = helmBin();
  try {
    await Deno.stat(bin);
  } catch (cause) {
    throw new Error(`${bin} is missing: run bash scripts/build-helm.sh`, { cause });
  }
  const home = await Deno.makeTempDir({ prefix: "fleet-helm-" });
  try {
    const output = await new Deno.Command(bin, {
      args,
      env: {
        HELM_CACHE_HOME: `${home}/cache`,
        HELM_CONFIG_HOME: `${home}/config`,
        HELM_DATA_HOME: `${home}/data`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      success: output.success,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}
