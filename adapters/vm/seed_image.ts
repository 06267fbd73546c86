/** Writes the NoCloud seed as a small VFAT image labelled `cidata` (dosfstools + mtools, no root). */
import { SEED_LABEL, type SeedFiles, VmHostError } from "../../vm/mod.ts";
import { mustRun } from "./tools.ts";

/** VFAT needs a little room for its tables; the three files are a few hundred bytes. */
const SEED_KIB = 1024;

export async function writeSeedImage(path: string, files: SeedFiles): Promise<void> {
  const staging = await Deno.makeTempDir({ prefix: "fleet-seed-" });
  try {
    const names = Object.keys(files) as (keyof SeedFiles)[];
    for (const name of names) await Deno.writeTextFile(`${staging}/${name}`, files[name]);
    await Deno.remove(path).catch(() => {});
    const fail = (reason: string) =>
      new VmHostError(`Cannot build the cloud-init seed ${path}: ${reason}`);
    await mustRun("mkfs.vfat", ["-n", SEED_LABEL, "-C", path, String(SEED_KIB)], fail);
    // mtools refuses images it did not make unless told not to check the geometry.
    await mustRun(
      "mcopy",
      ["-i", path, ...names.map((n) => `${staging}/${n}`), "::/"],
      fail,
      { env: { MTOOLS_SKIP_CHECK: "1" } },
    );
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}
