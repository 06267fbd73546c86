import assert from "node:assert/strict";
import { matchesSelector } from "../core/mod.ts";
import { DEMO_DEVICES, helloDeployment } from "./demo.ts";

/** Names of CPU architectures, Deno's (`Deno.build.arch`) and Kubernetes' (`kubernetes.io/arch`). */
const ARCH_NAMES = ["x86_64", "aarch64", "amd64", "arm64", "arm", "armhf", "i386", "riscv64"];
const HOST_ARCH: Record<typeof Deno.build.arch, string> = { x86_64: "amd64", aarch64: "arm64" };

Deno.test("DEMO_DEVICES name no architecture but the one their agents report (this host's)", () => {
  const host = [Deno.build.arch, HOST_ARCH[Deno.build.arch]];
  for (const { deviceId, labels } of DEMO_DEVICES) {
    for (const [key, value] of Object.entries(labels)) {
      if (!/(^|\/)arch$/.test(key) && !ARCH_NAMES.includes(value)) continue;
      assert.ok(
        host.includes(value),
        `${deviceId} is labelled ${key}=${value}, but its inventory says ${Deno.build.arch}`,
      );
    }
  }
});

Deno.test("helloDeployment() selects the two lab devices of DEMO_DEVICES, not the shop one", () => {
  const selector = helloDeployment("localhost/fleet-test:v1").spec.targetSelector;
  assert.deepEqual(
    DEMO_DEVICES.filter((d) => matchesSelector(selector, d.labels)).map((d) => d.deviceId),
    ["pi-lab-1", "pi-lab-2"],
  );
});
