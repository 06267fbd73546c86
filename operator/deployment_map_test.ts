import assert from "node:assert/strict";
import { DeploymentMap, DeploymentSet } from "./deployment_map.ts";

Deno.test("DeploymentMap keys by namespace and name only, and keeps same names of two namespaces apart", () => {
  const map = new DeploymentMap<number>();
  map.set({ namespace: "default", name: "web" }, 1);
  map.set({ namespace: "team-b", name: "web" }, 2);
  // Any object with the two fields is the same deployment; its other fields are not kept.
  const metadata = { namespace: "default", name: "web", generation: 7 };
  map.set(metadata, 3);
  assert.equal(map.size, 2);
  assert.equal(map.get({ namespace: "default", name: "web" }), 3);
  assert.deepEqual([...map.keys()], [
    { namespace: "default", name: "web" },
    { namespace: "team-b", name: "web" },
  ]);
  assert.equal(map.delete({ namespace: "team-b", name: "web" }), true);
  assert.equal(map.delete({ namespace: "team-b", name: "web" }), false);
  assert.deepEqual([...map], [[{ namespace: "default", name: "web" }, 3]]);
});

Deno.test("DeploymentSet adds each deployment once", () => {
  const set = new DeploymentSet([{ namespace: "a", name: "x" }, { namespace: "a", name: "x" }]);
  set.add({ namespace: "b", name: "x" });
  assert.equal(set.size, 2);
  assert.equal(set.has({ namespace: "a", name: "x" }), true);
  set.delete({ namespace: "a", name: "x" });
  assert.deepEqual([...set], [{ namespace: "b", name: "x" }]);
});
