import assert from "node:assert/strict";
import { seedFiles } from "../../vm/mod.ts";
import { writeSeedImage } from "./seed_image.ts";
import { runTool } from "./tools.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0123456789abcdefABCDEF test";

Deno.test("writeSeedImage() makes a VFAT image labelled cidata holding the three seed files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = seedFiles({
      hostname: "vm1",
      instanceId: "i-1",
      user: "fleet",
      sshPublicKey: KEY,
    });
    const image = `${dir}/seed.img`;
    await writeSeedImage(image, files);
    const env = { MTOOLS_SKIP_CHECK: "1" };
    const label = await runTool("mlabel", ["-s", "-i", image, "::"], { env });
    assert.match(label.stdout, /Volume label is CIDATA/i);
    for (const name of ["meta-data", "user-data", "network-config"] as const) {
      const read = await runTool("mtype", ["-i", image, `::/${name}`], { env });
      assert.equal(read.stdout, files[name], name);
    }
    // Writing again replaces the image rather than failing on it.
    await writeSeedImage(image, files);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
