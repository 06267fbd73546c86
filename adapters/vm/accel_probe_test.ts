import assert from "node:assert/strict";
import { kvmProbeArgs, kvmProbeBootSector, PROBE_EXIT_CODE } from "../../vm/mod.ts";
import { detectAccel } from "./accel_probe.ts";
import { runTool } from "./tools.ts";

Deno.test("the KVM probe sector makes qemu exit with PROBE_EXIT_CODE when a guest runs (TCG control)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/probe.img`, kvmProbeBootSector());
    const result = await runTool("qemu-system-x86_64", kvmProbeArgs(`${dir}/probe.img`, "tcg"));
    assert.equal(result.code, PROBE_EXIT_CODE, result.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("detectAccel() picks TCG for a foreign guest and gives a reason either way", async () => {
  const foreign = await detectAccel(Deno.build.arch === "x86_64" ? "aarch64" : "x86_64");
  assert.equal(foreign.accel, "tcg");
  const native = await detectAccel(Deno.build.arch);
  assert.ok(native.why.length > 0);
});
