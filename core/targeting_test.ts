import assert from "node:assert/strict";
import { type DesiredState, desiredStateOf } from "./deployment.ts";
import { deviceLabels } from "./device_info.ts";
import type { Labels } from "./selector.ts";
import { diffPerDevice, diffTargets, heldDeployment, selectDevices } from "./targeting.ts";

const DEVICES: [string, Labels][] = [
  ["dev-1", { env: "prod", tier: "edge" }],
  ["dev-2", { env: "prod", tier: "core" }],
  ["dev-3", { env: "dev", tier: "edge" }],
  ["dev-4", {}],
];

function desired(generation = 1, image = "nginx:1.27"): DesiredState {
  return {
    namespace: "default",
    name: "web",
    generation,
    score: {
      type: "PodmanV0",
      data: {
        services: [{
          name: "web",
          image,
          ports: ["8080:80"],
          env: [{ name: "A", value: "1" }],
          volumes: [],
          restartPolicy: "unless-stopped",
        }],
      },
    },
  };
}

function stored(deviceIds: string[], value: DesiredState = desired()): Map<string, DesiredState> {
  return new Map(deviceIds.map((id) => [id, structuredClone(value)]));
}

// --- selectDevices --------------------------------------------------------------------

Deno.test("selectDevices() returns the ids whose labels match the selector", () => {
  assert.deepStrictEqual(
    selectDevices({ matchLabels: { env: "prod" } }, DEVICES),
    new Set(["dev-1", "dev-2"]),
  );
  assert.deepStrictEqual(
    selectDevices(
      { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["core"] }] },
      DEVICES,
    ),
    new Set(["dev-1", "dev-3", "dev-4"]),
  );
});

Deno.test("selectDevices() with an empty selector selects every device", () => {
  assert.deepStrictEqual(selectDevices({}, DEVICES), new Set(["dev-1", "dev-2", "dev-3", "dev-4"]));
});

Deno.test("selectDevices() selects nothing when no device matches or there are none", () => {
  assert.deepStrictEqual(selectDevices({ matchLabels: { env: "staging" } }, DEVICES), new Set());
  assert.deepStrictEqual(selectDevices({}, []), new Set());
});

Deno.test("selectDevices() accepts a Map of device labels", () => {
  const registry = new Map<string, Labels>(DEVICES);
  assert.deepStrictEqual(
    selectDevices({ matchLabels: { tier: "edge" } }, registry),
    new Set(["dev-1", "dev-3"]),
  );
});

// --- diffPerDevice --------------------------------------------------------------------

Deno.test("diffPerDevice() gives each device its own value: a rollout's new and stable revisions", () => {
  const stable = desired(1, "nginx:1.27");
  const next = desired(2, "nginx:1.28");
  const current = new Map([["dev-1", structuredClone(stable)], ["dev-2", structuredClone(stable)]]);
  const wishes = new Map([["dev-1", next], ["dev-2", stable], ["dev-3", stable]]);
  const diff = diffPerDevice(current, new Set(["dev-1", "dev-2", "dev-3"]), (id) => wishes.get(id));
  assert.deepStrictEqual(diff, { put: ["dev-1", "dev-3"], remove: [] });
});

Deno.test("diffPerDevice() removes a key wished null, leaves one not decided yet", () => {
  const current = stored(["dev-1", "dev-2"]);
  const wishes = new Map<string, DesiredState | null>([["dev-1", null]]);
  const diff = diffPerDevice(current, new Set(["dev-1", "dev-2", "dev-3"]), (id) => wishes.get(id));
  // dev-2 keeps its key and dev-3 gets none until the rollout decides on them.
  assert.deepStrictEqual(diff, { put: [], remove: ["dev-1"] });
});

Deno.test("diffPerDevice() removes the keys of devices no longer targeted, whatever is wished", () => {
  const diff = diffPerDevice(stored(["dev-1", "dev-2"]), new Set(["dev-1"]), () => desired());
  assert.deepStrictEqual(diff, { put: [], remove: ["dev-2"] });
});

// --- diffTargets ----------------------------------------------------------------------

Deno.test("diffTargets() is empty in the steady state", () => {
  const diff = diffTargets(stored(["dev-1", "dev-2"]), new Set(["dev-1", "dev-2"]), desired());
  assert.deepStrictEqual(diff, { put: [], remove: [] });
});

Deno.test("diffTargets() is empty when nothing is targeted and nothing is stored", () => {
  assert.deepStrictEqual(diffTargets(new Map(), new Set(), desired()), { put: [], remove: [] });
  assert.deepStrictEqual(diffTargets(new Map(), new Set(), undefined), { put: [], remove: [] });
});

Deno.test("diffTargets() puts a newly matched device", () => {
  const diff = diffTargets(stored(["dev-1"]), new Set(["dev-1", "dev-2"]), desired());
  assert.deepStrictEqual(diff, { put: ["dev-2"], remove: [] });
});

Deno.test("diffTargets() puts every target of a new deployment, sorted", () => {
  const diff = diffTargets(new Map(), new Set(["dev-3", "dev-1", "dev-2"]), desired());
  assert.deepStrictEqual(diff, { put: ["dev-1", "dev-2", "dev-3"], remove: [] });
});

Deno.test("diffTargets() removes a device that no longer matches", () => {
  const diff = diffTargets(stored(["dev-1", "dev-2"]), new Set(["dev-1"]), desired());
  assert.deepStrictEqual(diff, { put: [], remove: ["dev-2"] });
});

Deno.test("diffTargets() puts and removes in the same diff when the target set moves", () => {
  const diff = diffTargets(stored(["dev-2", "dev-1"]), new Set(["dev-3", "dev-1"]), desired());
  assert.deepStrictEqual(diff, { put: ["dev-3"], remove: ["dev-2"] });
});

Deno.test("diffTargets() puts every device when the generation changes", () => {
  const diff = diffTargets(stored(["dev-2", "dev-1"]), new Set(["dev-1", "dev-2"]), desired(2));
  assert.deepStrictEqual(diff, { put: ["dev-1", "dev-2"], remove: [] });
});

Deno.test("diffTargets() puts every device when the score changes", () => {
  const diff = diffTargets(
    stored(["dev-1", "dev-2"]),
    new Set(["dev-1", "dev-2"]),
    desired(1, "nginx:1.28"),
  );
  assert.deepStrictEqual(diff, { put: ["dev-1", "dev-2"], remove: [] });
});

Deno.test("diffTargets() puts only the devices whose stored value differs", () => {
  const current = stored(["dev-1", "dev-2"]);
  current.set("dev-2", desired(1, "stale"));
  const diff = diffTargets(current, new Set(["dev-1", "dev-2"]), desired());
  assert.deepStrictEqual(diff, { put: ["dev-2"], remove: [] });
});

Deno.test("diffTargets() removes every key of a deleted deployment", () => {
  const diff = diffTargets(stored(["dev-2", "dev-1"]), new Set(["dev-1", "dev-2"]), undefined);
  assert.deepStrictEqual(diff, { put: [], remove: ["dev-1", "dev-2"] });
  const untargeted = diffTargets(stored(["dev-1"]), new Set(), undefined);
  assert.deepStrictEqual(untargeted, { put: [], remove: ["dev-1"] });
});

Deno.test("diffTargets() ignores key order in the stored DesiredState", () => {
  const reordered: DesiredState = JSON.parse(
    '{"score":{"data":{"services":[{"restartPolicy":"unless-stopped","volumes":[],' +
      '"env":[{"value":"1","name":"A"}],"ports":["8080:80"],"image":"nginx:1.27","name":"web"}]},' +
      '"type":"PodmanV0"},"generation":1,"name":"web","namespace":"default"}',
  );
  const diff = diffTargets(new Map([["dev-1", reordered]]), new Set(["dev-1"]), desired());
  assert.deepStrictEqual(diff, { put: [], remove: [] });
});

Deno.test("diffTargets() notices a changed array order in the stored DesiredState", () => {
  const current = desired();
  const two = structuredClone(current);
  const services = (two.score.data as { services: { name: string }[] }).services;
  services.push({ ...services[0]!, name: "db" });
  const swapped = structuredClone(two);
  (swapped.score.data as { services: unknown[] }).services.reverse();
  const diff = diffTargets(new Map([["dev-1", swapped]]), new Set(["dev-1"]), two);
  assert.deepStrictEqual(diff, { put: ["dev-1"], remove: [] });
});

const WEB = { namespace: "default", name: "web" };

Deno.test("heldDeployment() holds the newest value desired state has, on exactly the devices holding one", () => {
  const stored = new Map([["dev-1", desired(2)], ["dev-3", desired(1, "nginx:1.26")]]);
  const held = heldDeployment(WEB, stored)!;
  assert.equal(held.metadata.generation, 2);
  assert.deepEqual(desiredStateOf(held), desired(2));
  // Selected by device id whatever their labels are now.
  const fleet = DEVICES.map(([id, labels]) => [id, deviceLabels(id, labels)] as const);
  const targets = selectDevices(held.spec.targetSelector, fleet);
  assert.deepEqual([...targets].sort(), ["dev-1", "dev-3"]);
  // Nothing to write for dev-1; dev-3 gets the newest generation, as the rollout meant.
  assert.deepEqual(diffTargets(stored, targets, desiredStateOf(held)), {
    put: ["dev-3"],
    remove: [],
  });
});

Deno.test("heldDeployment() holds nothing when no device holds a value it can read", () => {
  assert.equal(heldDeployment(WEB, undefined), undefined);
  assert.equal(heldDeployment(WEB, new Map()), undefined);
  const unknown = { ...desired(1), score: { type: "NixV1", data: {} } };
  assert.equal(heldDeployment(WEB, new Map([["dev-1", unknown]])), undefined);
});
