import assert from "node:assert/strict";
import { API_VERSION } from "../core/deployment.ts";
import {
  AGENT_CONFLICT,
  agentConflictCondition,
  Condition,
  deviceConflictStatus,
  DeviceResource,
  deviceResource,
  DeviceStatus,
  deviceStatus,
  kubeTime,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  REACHABLE,
  reachableCondition,
  ReachableReasons,
  setCondition,
} from "./device_resource.ts";
import { DEVICE_ID_LABEL, type DeviceInfo } from "../core/device_info.ts";
import { InvalidIdentifierError } from "../core/ids.ts";
import { labelKeyProblem, labelValueProblem } from "../core/selector.ts";

const LONG = "a".repeat(70);

Deno.test("LABEL_KEY_PATTERN and LABEL_VALUE_PATTERN agree with selector.ts's rules", () => {
  const keys = [
    "a",
    "A.b_c-d",
    "example.com/x",
    "Example.com/x",
    "-a",
    "a/",
    "/a",
    "a/b/c",
    "a b",
    LONG,
  ];
  for (const key of keys) {
    assert.equal(LABEL_KEY_PATTERN.test(key), labelKeyProblem(key) === undefined, key);
  }
  const values = ["", "a", "A-b.c_d", "-a", "a-", "a b", "é", LONG, "a".repeat(63)];
  for (const value of values) {
    assert.equal(LABEL_VALUE_PATTERN.test(value), labelValueProblem(value) === undefined, value);
  }
});

// --- deviceResource -------------------------------------------------------------------

const INFO: DeviceInfo = {
  deviceId: "pi-7",
  labels: { [DEVICE_ID_LABEL]: "pi-7", env: "prod" },
  inventory: {
    hostname: "pi-7.local",
    arch: "aarch64",
    os: "Debian 12",
    kernel: "6.1.0",
    cpuCores: 4,
    memoryMb: 3906,
    agentVersion: "0.1.0",
  },
  updatedAt: "2024-05-01T10:00:00.000Z",
};

Deno.test("deviceResource() builds the apply body: name, the device-id label only, inventory and reported labels, no status", () => {
  assert.deepEqual(deviceResource(INFO), {
    apiVersion: API_VERSION,
    kind: "Device",
    metadata: { name: "pi-7", labels: { [DEVICE_ID_LABEL]: "pi-7" } },
    spec: { inventory: INFO.inventory, reportedLabels: { env: "prod" } },
  });
});

Deno.test("deviceResource() never takes the device-id label from what the device reports", () => {
  const body = deviceResource({ ...INFO, labels: { [DEVICE_ID_LABEL]: "vault-1", site: "vault" } });
  assert.deepEqual(body.metadata.labels, { [DEVICE_ID_LABEL]: "pi-7" });
  assert.deepEqual(body.spec.reportedLabels, { site: "vault" });
});

Deno.test("deviceResource() keeps an older agent's free-text label values out of the labels, in spec.unselectableLabels", () => {
  const body = deviceResource({
    ...INFO,
    labels: { ...INFO.labels, site: "Main St", room: "x".repeat(64) },
  });
  assert.deepEqual(body.spec.reportedLabels, { env: "prod" });
  assert.deepEqual(body.spec.unselectableLabels, { site: "Main St", room: "x".repeat(64) });
});

Deno.test("deviceResource() puts the description, annotations and unselectable labels in spec", () => {
  const body = deviceResource({
    ...INFO,
    unselectableLabels: { room: "Lab A, 2nd floor" },
    description: "Gateway by the loading dock",
    annotations: { owner: "Facilities, ext. 4411" },
  });
  assert.deepEqual(body.metadata.labels, { [DEVICE_ID_LABEL]: "pi-7" });
  assert.deepEqual(body.spec, {
    inventory: INFO.inventory,
    reportedLabels: { env: "prod" },
    description: "Gateway by the loading dock",
    annotations: { owner: "Facilities, ext. 4411" },
    unselectableLabels: { room: "Lab A, 2nd floor" },
  });
  assert.deepEqual(DeviceResource.parse(body).spec, body.spec);
});

Deno.test("deviceResource() writes no annotations, so applying removes an older operator's original-labels one", () => {
  assert.equal("annotations" in deviceResource(INFO).metadata, false);
});

Deno.test("deviceResource() refuses a deviceId that is not a DNS label", () => {
  assert.throws(() => deviceResource({ ...INFO, deviceId: "Pi.7" }), InvalidIdentifierError);
});

Deno.test("DeviceResource parses an apply body with a status, ignoring unknown fields", () => {
  const now = Date.parse("2024-05-01T10:00:00Z");
  const resource = {
    ...deviceResource(INFO),
    status: deviceStatus(true, now - 1000, now),
    extra: { from: "a newer operator" },
  };
  const parsed = DeviceResource.parse(resource);
  assert.equal(parsed.metadata.name, "pi-7");
  assert.equal(parsed.status?.conditions?.[0]?.type, REACHABLE);
  assert.equal("extra" in parsed, false);
});

// --- conditions -----------------------------------------------------------------------

const T0 = Date.parse("2024-05-01T10:00:00Z");
const T1 = T0 + 60_000;

Deno.test("kubeTime() writes RFC 3339 UTC with whole seconds, as Kubernetes does", () => {
  assert.equal(kubeTime(T0 + 999), "2024-05-01T10:00:00Z");
});

Deno.test("reachableCondition() says HeartbeatFresh, HeartbeatStale or NeverSeen", () => {
  assert.deepEqual(reachableCondition(true, T0, T1), {
    type: "Reachable",
    status: "True",
    reason: "HeartbeatFresh",
    message: "The agent's heartbeat is fresh",
    lastTransitionTime: "2024-05-01T10:01:00Z",
  });
  const stale = reachableCondition(false, T0, T1);
  assert.equal(stale.status, "False");
  assert.equal(stale.reason, ReachableReasons.HeartbeatStale);
  assert.equal(stale.message, "No heartbeat since 2024-05-01T10:00:00Z");
  const never = reachableCondition(false, undefined, T1);
  assert.equal(never.reason, ReachableReasons.NeverSeen);
  for (const condition of [stale, never]) Condition.parse(condition);
});

Deno.test("reachableCondition() keeps lastTransitionTime while the status stays the same", () => {
  const first = reachableCondition(true, T0, T0);
  const later = reachableCondition(true, T1, T1 + 5000, first);
  assert.equal(later.lastTransitionTime, first.lastTransitionTime);
  assert.deepEqual(later, first, "a steady device does not change its condition");
  const never = reachableCondition(false, undefined, T0);
  const stale = reachableCondition(false, T1, T1 + 100_000, never);
  assert.equal(stale.lastTransitionTime, never.lastTransitionTime, "reason changed, status not");
});

Deno.test("reachableCondition() advances lastTransitionTime when the status flips", () => {
  const up = reachableCondition(true, T0, T0);
  const down = reachableCondition(false, T0, T1, up);
  assert.equal(down.lastTransitionTime, kubeTime(T1));
  const back = reachableCondition(true, T1 + 1000, T1 + 2000, down);
  assert.equal(back.lastTransitionTime, kubeTime(T1 + 2000));
});

Deno.test("reachableCondition() ignores a previous condition of another type", () => {
  const other: Condition = { ...reachableCondition(true, T0, T0), type: "Ready" };
  assert.equal(reachableCondition(true, T1, T1, other).lastTransitionTime, kubeTime(T1));
});

Deno.test("setCondition() replaces the condition of the same type in place, or appends", () => {
  const a: Condition = { ...reachableCondition(true, T0, T0), type: "A" };
  const reachable = reachableCondition(true, T0, T0);
  const b: Condition = { ...a, type: "B" };
  const next = reachableCondition(false, T0, T1, reachable);
  assert.deepEqual(setCondition([a, reachable, b], next), [a, next, b]);
  assert.deepEqual(setCondition(undefined, next), [next]);
});

Deno.test("deviceStatus() sets lastSeen and Reachable and keeps other conditions", () => {
  const other: Condition = { ...reachableCondition(true, T0, T0), type: "Other" };
  const previous: DeviceStatus = deviceStatus(true, T0, T0);
  previous.conditions?.push(other);
  const status = deviceStatus(false, T0, T1, previous);
  assert.equal(status.lastSeen, kubeTime(T0));
  assert.deepEqual(status.conditions?.map((c) => [c.type, c.status]), [
    ["Reachable", "False"],
    ["Other", "True"],
  ]);
  const never = deviceStatus(false, undefined, T1);
  assert.equal("lastSeen" in never, false);
  DeviceStatus.parse(status);
});

Deno.test("deviceConflictStatus sets AgentConflict, keeps Reachable and lastSeen, dates transitions only", () => {
  const now = Date.UTC(2026, 5, 1, 12);
  const conflict = {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: new Date(now).toISOString(),
  };
  const reachable = deviceStatus(true, now, now);
  const during = deviceConflictStatus(conflict, now, reachable);
  assert.equal(during.lastSeen, reachable.lastSeen);
  assert.deepEqual(during.conditions?.map((c) => `${c.type}=${c.status}`), [
    "Reachable=True",
    "AgentConflict=True",
  ]);
  assert.match(during.conditions?.[1]?.message ?? "", /aaaaaa keeps the containers/);
  assert.deepEqual(during.agentConflict, {
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: conflict.since,
  });
  assert.ok(DeviceStatus.safeParse(during).success);
  const again = deviceConflictStatus(conflict, now + 60_000, during);
  assert.equal(
    again.conditions?.[1]?.lastTransitionTime,
    during.conditions?.[1]?.lastTransitionTime,
  );
  const over = deviceConflictStatus(undefined, now + 120_000, again);
  assert.equal(over.conditions?.[1]?.status, "False");
  assert.equal(over.conditions?.[1]?.reason, "OneAgent");
  assert.equal(over.agentConflict, undefined);
  assert.equal(agentConflictCondition(undefined, now).type, AGENT_CONFLICT);
});
