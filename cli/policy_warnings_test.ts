import assert from "node:assert/strict";
import { buildDeployment } from "../core/mod.ts";
import { UsageError } from "../core/errors.ts";
import { createLogger } from "../adapters/logger.ts";
import { checkWorkloadPolicy } from "./policy_warnings.ts";

function capture() {
  const lines: string[] = [];
  return {
    logger: createLogger({ level: "warn", timestamps: false, write: (l) => lines.push(l) }),
    lines,
  };
}

function deployment(volumes: string[]) {
  return buildDeployment({
    name: "web",
    namespace: "shop",
    image: "localhost/web:1",
    ports: [],
    env: [],
    volumes,
    selectors: ["site=lab"],
    allBoundDevices: false,
  });
}

Deno.test("checkWorkloadPolicy() refuses a mount of the agent's key, naming deployment, path and rule", () => {
  const { logger, lines } = capture();
  assert.throws(
    () => checkWorkloadPolicy(deployment(["/etc/fleet-agent/device-key.json:/k:ro"]), logger),
    (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(
        error.message,
        "deployment shop/web refused: no device would run it: service web: host path " +
          "/etc/fleet-agent/device-key.json is the agent's config directory (/etc/fleet-agent), " +
          "which no workload may mount whatever the policy says",
      );
      return true;
    },
  );
  assert.deepEqual(lines, []);
});

Deno.test("checkWorkloadPolicy() warns of privileged mode the default policy refuses, and is silent for an ordinary workload", () => {
  const { logger, lines } = capture();
  checkWorkloadPolicy(deployment(["/srv/web:/data:ro"]), logger);
  assert.deepEqual(lines, []);
  const privileged = deployment([]);
  privileged.spec.score.data.services[0]!.privileged = true;
  checkWorkloadPolicy(privileged, logger);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /deployment shop\/web: a device with the default policy will report it Failed unless its agent config allows it: service web asks for privileged mode, which this device does not allow \(policy\.privileged\)$/,
  );
});
