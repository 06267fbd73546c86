import assert from "node:assert/strict";
import { deploymentCrd } from "./crds.ts";
import type { StructuralSchema } from "./schema.ts";

/** Paths of the nodes under `node` that keep fields their schema does not declare. */
function openNodes(node: StructuralSchema, path: string): string[] {
  const here = node["x-kubernetes-preserve-unknown-fields"] ? [path] : [];
  const children = [
    ...Object.entries(node.properties ?? {}).map(([key, child]) =>
      [`${path}.${key}`, child] as const
    ),
    ...(node.items ? [[`${path}[]`, node.items] as const] : []),
    ...(node.additionalProperties ? [[`${path}{}`, node.additionalProperties] as const] : []),
  ];
  return [...here, ...children.flatMap(([p, child]) => openNodes(child, p))];
}

Deno.test("deploymentCrd() declares every field of spec: none keeps unknown fields, so a typo is refused or pruned, never stored", () => {
  const root = deploymentCrd().spec.versions[0]!.schema.openAPIV3Schema;
  assert.deepEqual(openNodes(root.properties!.spec!, "spec"), []);
  // The workload data is typed down to each service's fields.
  const data = root.properties!.spec!.properties!.score!.properties!.data!;
  assert.ok(data.properties?.services?.items?.properties?.restartPolicy, JSON.stringify(data));
});
