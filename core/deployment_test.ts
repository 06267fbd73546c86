import assert from "node:assert/strict";
import { Deployment, desiredStateOf, nextGeneration, type StoredDeployment } from "./deployment.ts";
import { DEVICE_ID_LABEL, deviceLabels } from "./device_info.ts";

function deployment(image = "nginx:1.27", extra: Record<string, unknown> = {}): Deployment {
  return Deployment.parse({
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Deployment",
    metadata: { name: "web", namespace: "retail", ...extra },
    spec: {
      targetSelector: { matchLabels: { env: "prod" } },
      score: { type: "PodmanV0", data: { services: [{ name: "web", image }] } },
    },
  });
}

function stored(d: Deployment, generation: number): StoredDeployment {
  return { ...d, metadata: { ...d.metadata, generation } };
}

Deno.test("desiredStateOf() carries namespace, name, generation and score", () => {
  const d = stored(deployment(), 4);
  assert.deepStrictEqual(desiredStateOf(d), {
    namespace: "retail",
    name: "web",
    generation: 4,
    score: d.spec.score,
  });
});

Deno.test("nextGeneration() is 1 for a new deployment", () => {
  assert.equal(nextGeneration(undefined, deployment()), 1);
});

Deno.test("nextGeneration() keeps the generation when the spec is unchanged", () => {
  assert.equal(nextGeneration(stored(deployment(), 3), deployment()), 3);
  // Metadata is not spec: new labels do not bump the generation.
  assert.equal(
    nextGeneration(stored(deployment(), 3), deployment("nginx:1.27", { labels: { a: "b" } })),
    3,
  );
});

Deno.test("nextGeneration() ignores key order in the spec", () => {
  const reordered = deployment();
  reordered.spec = {
    rollout: reordered.spec.rollout,
    score: reordered.spec.score,
    targetSelector: reordered.spec.targetSelector,
  };
  assert.equal(nextGeneration(stored(deployment(), 3), reordered), 3);
});

Deno.test("nextGeneration() increments the generation when the spec changes", () => {
  assert.equal(nextGeneration(stored(deployment(), 3), deployment("nginx:1.28")), 4);
});

Deno.test("deviceLabels() adds the device-id label, which wins over a configured one", () => {
  assert.equal(DEVICE_ID_LABEL, "fleet.nationtech.io/device-id");
  assert.deepStrictEqual(deviceLabels("dev-1", { env: "prod" }), {
    env: "prod",
    [DEVICE_ID_LABEL]: "dev-1",
  });
  assert.deepStrictEqual(deviceLabels("dev-1", { [DEVICE_ID_LABEL]: "spoofed" }), {
    [DEVICE_ID_LABEL]: "dev-1",
  });
});
