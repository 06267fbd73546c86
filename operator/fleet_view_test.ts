import assert from "node:assert/strict";
import {
  type DeploymentRef,
  type LabelSelector,
  selectDevices,
  type StoredDeployment,
} from "../core/mod.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { FleetView } from "./fleet_view.ts";

function stored(name: string, selector: LabelSelector): StoredDeployment {
  const d = singleServiceDeployment({ name, image: "localhost/x:1", selector });
  return { ...d, metadata: { ...d.metadata, generation: 1 } };
}

function ref(i: number): DeploymentRef {
  return { namespace: "default", name: `d${i}` };
}

Deno.test("FleetView's label index selects exactly what a scan of every device selects", () => {
  const view = new FleetView({ allowUnbound: true });
  const selectors: LabelSelector[] = [
    { matchLabels: { site: "lab" } },
    { matchLabels: { site: "lab", tier: "edge" } },
    { matchExpressions: [{ key: "tier", operator: "In", values: ["edge", "core"] }] },
    { matchExpressions: [{ key: "site", operator: "NotIn", values: ["lab"] }] },
    { matchExpressions: [{ key: "tier", operator: "Exists" }] },
    { matchLabels: { site: "nowhere" } },
    { matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] },
  ];
  selectors.forEach((s, i) => view.deployments.set(ref(i), stored(`d${i}`, s)));
  const check = () => {
    selectors.forEach((s, i) =>
      assert.deepEqual(view.resolveTargets(ref(i)), selectDevices(s, view.devices))
    );
  };
  for (let i = 0; i < 30; i++) {
    const labels: Record<string, string> = { site: ["lab", "shop", "home"][i % 3]! };
    if (i % 2 === 0) labels.tier = i % 4 === 0 ? "edge" : "core";
    view.setDevice(`dev-${i}`, labels);
  }
  check();
  view.setDevice("dev-0", { site: "shop" });
  view.setDevice("dev-1", { site: "lab", tier: "edge" });
  view.removeDevice("dev-2");
  view.removeDevice("dev-unknown");
  check();
  assert.equal(view.resolveTargets(ref(5)).size, 0);
});
