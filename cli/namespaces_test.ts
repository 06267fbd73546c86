import assert from "node:assert/strict";
import { storedDeployment } from "../testing/operator_fakes.ts";
import { renderNamespaces } from "./namespaces.ts";
import { renderDeployments } from "./render.ts";

Deno.test("renderNamespaces() shows each namespace's devices, <none> for an unbound one", () => {
  const rows = [
    { namespace: "team-a", binding: "site=a" },
    { namespace: "team-c", binding: undefined },
  ];
  assert.deepEqual(renderNamespaces(rows, "table").split("\n").map((l) => l.trimEnd()), [
    "NAMESPACE   DEVICES",
    "team-a      site=a",
    "team-c      <none>",
  ]);
  assert.deepEqual(JSON.parse(renderNamespaces(rows, "json")).items, [
    { namespace: "team-a", deviceSelector: "site=a" },
    { namespace: "team-c", deviceSelector: null },
  ]);
  assert.equal(renderNamespaces([], "table"), "No namespaces.");
});

Deno.test("renderDeployments() says why a deployment targets no device in LAST ERROR", () => {
  const why =
    "namespace default is bound to no devices; an admin binds it with fleet namespace bind";
  const table = renderDeployments(
    [{
      deployment: storedDeployment("web", { matchLabels: { site: "a" } }),
      status: {
        namespace: "default",
        name: "web",
        observedGeneration: 1,
        aggregate: {
          matchedDeviceCount: 0,
          succeeded: 0,
          failed: 0,
          pending: 0,
          unreachable: 0,
          lastError: null,
          targetingProblem: why,
        },
        updatedAt: "2026-02-01T06:00:00Z",
      },
    }],
    "table",
    Date.parse("2026-02-01T06:00:00Z"),
  );
  assert.ok(table.split("\n")[1]?.endsWith(why), table);
});
