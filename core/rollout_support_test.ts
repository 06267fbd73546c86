import assert from "node:assert/strict";
import { Deployment } from "./deployment.ts";
import { rolloutSupportProblem } from "./rollout_support.ts";

function spec(rollout: unknown) {
  return Deployment.parse({
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Deployment",
    metadata: { name: "web", namespace: "default" },
    spec: {
      targetSelector: { matchLabels: { site: "lab" } },
      score: { type: "PodmanV0", data: { services: [{ name: "web", image: "web:1" }] } },
      ...(rollout === undefined ? {} : { rollout }),
    },
  }).spec;
}

Deno.test("rolloutSupportProblem() takes Immediate, the default, and names Progressive as not run yet", () => {
  assert.equal(rolloutSupportProblem(spec(undefined)), undefined);
  assert.equal(rolloutSupportProblem(spec({ strategy: "Immediate" })), undefined);
  assert.match(
    rolloutSupportProblem(spec({ strategy: "Progressive", batches: [{ limit: 1 }] }))!,
    /rollout\.strategy Progressive is not run by this version of Fleet yet: it would reach every device at once; use strategy Immediate/,
  );
});
