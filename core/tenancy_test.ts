import assert from "node:assert/strict";
import { type DeploymentSpec, parseDeploymentManifest } from "./deployment.ts";
import { buildDeployment, DeploymentFlagError } from "./deployment_builder.ts";
import { DEVICE_ID_LABEL } from "./device_info.ts";
import { WireFormatError } from "./errors.ts";
import { type LabelSelector, SelectorSyntaxError } from "./selector.ts";
import { type BindingInput, inScope, parseBinding, targetScope } from "./tenancy.ts";

function spec(targetSelector: LabelSelector, targetAllBoundDevices?: boolean): DeploymentSpec {
  return {
    targetSelector,
    ...(targetAllBoundDevices !== undefined ? { targetAllBoundDevices } : {}),
    score: { type: "PodmanV0", data: { services: [] } },
    rollout: { strategy: "Immediate" },
  };
}

const TEAM_A: BindingInput = { namespace: "team-a", binding: "site=a", allowUnbound: false };
const DEV_A = { site: "a", [DEVICE_ID_LABEL]: "dev-a" };
const DEV_B = { site: "b", [DEVICE_ID_LABEL]: "dev-b" };

Deno.test("parseBinding() reads the kubectl syntax, and * as every device", () => {
  assert.deepStrictEqual(parseBinding("site=a,tier in (x,y)"), {
    matchLabels: { site: "a" },
    matchExpressions: [{ key: "tier", operator: "In", values: ["x", "y"] }],
  });
  assert.deepStrictEqual(parseBinding(" * "), {});
});

Deno.test("parseBinding() refuses an empty or unreadable binding, naming it", () => {
  assert.throws(() => parseBinding(" "), SelectorSyntaxError);
  assert.throws(() => parseBinding(""), /must not be empty; bind it to every device with \*/);
  assert.throws(() => parseBinding("site in ()"), /Invalid selector "site in \(\)"/);
});

Deno.test("targetScope() lets no selector of a team-a deployment reach a team-b device", () => {
  const attempts: LabelSelector[] = [
    { matchLabels: { site: "b" } },
    { matchExpressions: [{ key: "site", operator: "In", values: ["a", "b"] }] },
    { matchExpressions: [{ key: "site", operator: "Exists" }] },
    { matchExpressions: [{ key: "site", operator: "NotIn", values: ["a"] }] },
    { matchExpressions: [{ key: DEVICE_ID_LABEL, operator: "In", values: ["dev-b"] }] },
    { matchLabels: { [DEVICE_ID_LABEL]: "dev-b" } },
  ];
  for (const selector of attempts) {
    const scope = targetScope(spec(selector), TEAM_A);
    assert.equal(inScope(scope, DEV_B), false, JSON.stringify(selector));
  }
  const all = targetScope(spec({}, true), TEAM_A);
  assert.equal(inScope(all, DEV_B), false);
  assert.equal(inScope(all, DEV_A), true, "every bound device, when asked for explicitly");
  const exists = targetScope(
    spec({ matchExpressions: [{ key: "site", operator: "Exists" }] }),
    TEAM_A,
  );
  assert.equal(inScope(exists, DEV_A), true, "a bound device still matches");
});

Deno.test("targetScope() targets nothing with an empty selector unless asked, and says why", () => {
  for (const selector of [{}, { matchLabels: {}, matchExpressions: [] }]) {
    const scope = targetScope(spec(selector), TEAM_A);
    assert.equal(inScope(scope, DEV_A), false);
    assert.match(scope.problem ?? "", /targetSelector is empty.*set targetAllBoundDevices: true/);
  }
  assert.equal(targetScope(spec({}, false), TEAM_A).problem !== undefined, true);
});

Deno.test("targetScope() targets nothing in an unbound namespace, unless unbound ones are allowed", () => {
  const unbound = { namespace: "team-c", binding: undefined, allowUnbound: false };
  const scope = targetScope(spec({ matchLabels: { site: "a" } }), unbound);
  assert.equal(inScope(scope, DEV_A), false);
  assert.equal(
    scope.problem,
    "namespace team-c is bound to no devices; an admin binds it with fleet namespace bind " +
      "team-c --devices 'site=a' (or --devices '*')",
  );
  const allowed = targetScope(spec({ matchLabels: { site: "a" } }), {
    ...unbound,
    allowUnbound: true,
  });
  assert.equal(inScope(allowed, DEV_A), true);
  assert.equal(inScope(allowed, DEV_B), false, "the deployment's own selector still decides");
  const everything = targetScope(spec({}, true), { ...unbound, allowUnbound: true });
  assert.equal(inScope(everything, DEV_B), true);
});

Deno.test("targetScope() targets nothing under an unreadable binding, naming it", () => {
  const scope = targetScope(spec({ matchLabels: { site: "a" } }), {
    ...TEAM_A,
    binding: "site in ()",
  });
  assert.equal(inScope(scope, DEV_A), false);
  assert.match(scope.problem ?? "", /^namespace team-a has an unreadable device binding.*site in/);
});

Deno.test("targetScope() with binding * lets the deployment's selector decide alone", () => {
  const scope = targetScope(spec({ matchLabels: { site: "b" } }), { ...TEAM_A, binding: "*" });
  assert.equal(inScope(scope, DEV_B), true);
  assert.equal(inScope(scope, DEV_A), false);
});

function manifest(spec: Record<string, unknown>): unknown {
  return {
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Deployment",
    metadata: { name: "web" },
    spec: {
      score: { type: "PodmanV0", data: { services: [{ name: "web", image: "x" }] } },
      ...spec,
    },
  };
}

Deno.test("parseDeploymentManifest() refuses an empty targetSelector unless targetAllBoundDevices", () => {
  for (const targetSelector of [{}, { matchLabels: {} }, { matchExpressions: [] }]) {
    assert.throws(
      () => parseDeploymentManifest(manifest({ targetSelector }), "Deployment in web.yaml"),
      (error: unknown) =>
        error instanceof WireFormatError &&
        error.message ===
          "Invalid Deployment in web.yaml: spec.targetSelector is empty: a deployment names " +
            "the devices it targets; to target every device bound to its namespace, set " +
            "spec.targetAllBoundDevices: true",
    );
  }
  const all = parseDeploymentManifest(
    manifest({ targetSelector: {}, targetAllBoundDevices: true }),
    "Deployment in web.yaml",
  );
  assert.equal(all.spec.targetAllBoundDevices, true);
});

Deno.test("buildDeployment() needs --selector or --all-bound-devices, not both", () => {
  const flags = {
    name: "web",
    namespace: "team-a",
    image: "x",
    ports: [],
    env: [],
    volumes: [],
  };
  assert.throws(
    () => buildDeployment({ ...flags, selectors: [] }),
    (error: unknown) =>
      error instanceof DeploymentFlagError &&
      error.message === "apply deployment needs --selector naming the devices it targets, or " +
          "--all-bound-devices for every device bound to namespace team-a",
  );
  assert.throws(
    () => buildDeployment({ ...flags, selectors: ["site=a"], allBoundDevices: true }),
    /--all-bound-devices cannot be combined with --selector/,
  );
  const all = buildDeployment({ ...flags, selectors: [], allBoundDevices: true });
  assert.deepStrictEqual(all.spec.targetSelector, {});
  assert.equal(all.spec.targetAllBoundDevices, true);
  assert.equal(
    buildDeployment({ ...flags, selectors: ["site=a"] }).spec.targetAllBoundDevices,
    undefined,
  );
});
