import assert from "node:assert/strict";
import {
  Deployment,
  desiredStateOf,
  nextGeneration,
  parseDeploymentManifest,
  type StoredDeployment,
} from "./deployment.ts";
import { WireFormatError } from "./errors.ts";
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

/** A manifest as a person writes it, with `services[0]` replaced by `service`. */
function manifest(service: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Deployment",
    metadata: { name: "web", namespace: "retail" },
    spec: {
      targetSelector: { matchLabels: { env: "prod" } },
      score: {
        type: "PodmanV0",
        data: { services: [{ name: "web", image: "nginx", ...service }] },
      },
    },
    ...extra,
  };
}

function refusal(input: unknown): string {
  try {
    parseDeploymentManifest(input, "Deployment in web.yaml");
  } catch (error) {
    assert.ok(error instanceof WireFormatError, String(error));
    assert.equal(error.kind, "usage");
    return error.message;
  }
  assert.fail("accepted");
}

Deno.test("parseDeploymentManifest() refuses a misspelt field with its full path", () => {
  assert.equal(
    refusal(manifest({ restartPolicyy: "always" })),
    "Invalid Deployment in web.yaml: spec.score.data.services[0].restartPolicyy: unknown field",
  );
  // The lenient wire schema would have dropped it and run with the default policy.
  assert.equal(
    Deployment.parse(manifest({ restartPolicyy: "always" })).spec.score.data.services[0]
      ?.restartPolicy,
    "unless-stopped",
  );
  const typoInMetadata = manifest({});
  (typoInMetadata.metadata as Record<string, unknown>).lables = { a: "b" };
  assert.match(refusal(typoInMetadata), /metadata\.lables: unknown field/);
  assert.match(refusal(manifest({ image: 1, portz: [] })), /portz: unknown field; .*image: /);
});

Deno.test("parseDeploymentManifest() takes a file saved with kubectl get -o yaml: metadata and status are not applied", () => {
  const saved = manifest({}, {
    status: { observedGeneration: 2, aggregate: { matchedDeviceCount: 3 }, anything: true },
  });
  Object.assign(saved.metadata, {
    uid: "5f0c1a2e-3b4d-4c5e-8f90-112233445566",
    resourceVersion: "48213",
    generation: 2,
    creationTimestamp: "2025-01-14T08:00:00Z",
    labels: { app: "web" },
    annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
    finalizers: ["fleet.nationtech.io/finalizer"],
    managedFields: [{ manager: "kubectl", operation: "Apply" }],
  });
  const parsed = parseDeploymentManifest(saved, "Deployment in web.yaml");
  assert.deepEqual(parsed, Deployment.parse(saved));
  assert.equal("status" in parsed, false);
  assert.deepEqual(Object.keys(parsed.metadata).sort(), [
    "creationTimestamp",
    "generation",
    "labels",
    "name",
    "namespace",
  ]);
});

Deno.test("parseDeploymentManifest() refuses another kind, naming it", () => {
  assert.match(
    refusal({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } }),
    /kind "ConfigMap": fleet apply takes only kind Deployment of apiVersion fleet\.nationtech\.io\/v1alpha1/,
  );
  assert.match(
    refusal({ ...manifest({}), apiVersion: "apps/v1" }),
    /apiVersion "apps\/v1" is not Fleet's Deployment \(apps\/v1 is Kubernetes' own\)/,
  );
  assert.match(refusal({ metadata: { name: "x" } }), /kind is missing/);
  assert.match(refusal(["a"]), /not an object but a list/);
});
