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
  ORIGINAL_LABELS_ANNOTATION,
  REACHABLE,
  reachableCondition,
  ReachableReasons,
  sanitizeLabels,
  setCondition,
} from "./device_resource.ts";
import { DEVICE_ID_LABEL, type DeviceInfo } from "../core/device_info.ts";
import { InvalidIdentifierError } from "../core/ids.ts";
import { labelKeyProblem, labelValueProblem } from "../core/selector.ts";

const LONG = "a".repeat(70);

function assertValidLabels(labels: Record<string, string>): void {
  for (const [key, value] of Object.entries(labels)) {
    assert.equal(labelKeyProblem(key), undefined, `key ${JSON.stringify(key)}`);
    assert.equal(labelValueProblem(value), undefined, `value ${JSON.stringify(value)}`);
  }
}

// --- sanitizeLabels -------------------------------------------------------------------

Deno.test("sanitizeLabels() keeps valid labels as they are, uppercase and empty values too", () => {
  const labels = {
    env: "Prod",
    "example.com/tier": "edge_1.2",
    empty: "",
    [DEVICE_ID_LABEL]: "d1",
  };
  assert.deepEqual(sanitizeLabels(labels), {
    labels: { [DEVICE_ID_LABEL]: "d1", empty: "", env: "Prod", "example.com/tier": "edge_1.2" },
    changed: {},
  });
});

Deno.test("sanitizeLabels() replaces invalid characters in values with '-' and trims the ends", () => {
  const { labels, changed } = sanitizeLabels({
    site: "Main St. 5",
    room: " (lab) ",
    note: "a/b:c",
  });
  assert.deepEqual(labels, { note: "a-b-c", room: "lab", site: "Main-St.-5" });
  assert.deepEqual(changed, {
    note: { key: "note", value: "a/b:c" },
    room: { key: "room", value: " (lab) " },
    site: { key: "site", value: "Main St. 5" },
  });
});

Deno.test("sanitizeLabels() replaces each non-ASCII code point with one '-'", () => {
  const { labels } = sanitizeLabels({ city: "Montréal", flag: "a🇨🇦b", only: "日本" });
  assert.equal(labels.city, "Montr-al");
  assert.equal(labels.flag, "a--b");
  // Nothing usable left: the hash keeps it distinct from an empty value.
  assert.match(labels.only ?? "", /^[0-9a-f]{8}$/);
});

Deno.test("sanitizeLabels() cuts a value over 63 characters and ends it with a hash", () => {
  const { labels, changed } = sanitizeLabels({ v: LONG });
  assert.equal(labels.v?.length, 63);
  assert.match(labels.v ?? "", /^a{54}-[0-9a-f]{8}$/);
  assert.deepEqual(changed, { v: { key: "v", value: LONG } });
});

Deno.test("sanitizeLabels() gives long values sharing a prefix distinct hashes", () => {
  const { labels } = sanitizeLabels({ a: `${LONG}x`, b: `${LONG}y`, c: `${LONG}x` });
  assert.notEqual(labels.a, labels.b);
  assert.equal(labels.a, labels.c, "the same value gives the same result");
});

Deno.test("sanitizeLabels() trims separators left before the hash of a cut value", () => {
  const { labels } = sanitizeLabels({ v: `${"a".repeat(53)}-.${"b".repeat(20)}` });
  assert.match(labels.v ?? "", /^a{53}-[0-9a-f]{8}$/);
});

Deno.test("sanitizeLabels() lowercases a key prefix into a DNS subdomain, keeps the name's case", () => {
  const { labels, changed } = sanitizeLabels({
    "Example.COM/Role": "db",
    "my_org..io/x": "1",
    "-bad-/y": "2",
  });
  assert.deepEqual(labels, { "bad/y": "2", "example.com/Role": "db", "my-org.io/x": "1" });
  assert.deepEqual(changed["example.com/Role"], { key: "Example.COM/Role", value: "db" });
});

Deno.test("sanitizeLabels() rewrites key names: spaces, unicode, extra slashes, length", () => {
  const { labels, changed } = sanitizeLabels({
    "Zone Name": "x",
    "é": "y",
    "a/b/c": "z",
    [LONG]: "w",
    "": "e",
    "example.com/": "n",
  });
  assertValidLabels(labels);
  assert.equal(labels["Zone-Name"], "x");
  assert.equal(labels["a-b/c"], "z");
  assert.equal(Object.keys(labels).length, 6, "no label is lost");
  assert.equal(Object.keys(changed).length, 6);
  const long = Object.keys(labels).find((k) => labels[k] === "w") ?? "";
  assert.match(long, /^a{54}-[0-9a-f]{8}$/);
  for (const [key, original] of Object.entries(changed)) {
    assert.equal(labels[key], original.value, "values were valid here");
  }
});

Deno.test("sanitizeLabels() cuts a key prefix over 253 characters", () => {
  const prefix = Array.from({ length: 40 }, (_, i) => `part${i}x`).join(".");
  assert.ok(prefix.length > 253);
  const { labels } = sanitizeLabels({ [`${prefix.toUpperCase()}/name`]: "v" });
  const [key = ""] = Object.keys(labels);
  assert.ok(key.split("/")[0]!.length <= 253);
  assert.equal(labelKeyProblem(key), undefined);
});

Deno.test("sanitizeLabels() gives a rewritten key that collides a hash, valid keys keep theirs", () => {
  const { labels, changed } = sanitizeLabels({ "x y": "1", "x-y": "2", "x?y": "3" });
  assert.equal(labels["x-y"], "2", "the valid key is untouched");
  const others = Object.keys(labels).filter((k) => k !== "x-y");
  assert.equal(others.length, 2);
  assert.notEqual(others[0], others[1]);
  for (const key of others) assert.match(key, /^x-y-[0-9a-f]{8}$/);
  assert.deepEqual(
    Object.values(changed).map((c) => c.key).sort(),
    ["x y", "x?y"],
  );
});

Deno.test("sanitizeLabels() is deterministic whatever the input order", () => {
  const entries: [string, string][] = [["B c", "1"], ["b-c", "2"], ["B?c", "x y"], ["z", LONG]];
  const first = sanitizeLabels(Object.fromEntries(entries));
  const second = sanitizeLabels(Object.fromEntries([...entries].reverse()));
  assert.deepEqual(second, first);
  assert.equal(JSON.stringify(second), JSON.stringify(first), "same key order too");
});

/** Small deterministic PRNG (mulberry32), so the fuzz cases are the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("sanitizeLabels() always yields valid, distinct labels (seeded fuzz)", () => {
  const alphabet = ["a", "Z", "0", "-", "_", ".", "/", " ", "é", "日", ":", "A", "9"];
  const random = prng(42);
  const text = (max: number) =>
    Array.from(
      { length: Math.floor(random() * max) },
      () => alphabet[Math.floor(random() * alphabet.length)],
    ).join("");
  for (let round = 0; round < 300; round++) {
    const input: Record<string, string> = {};
    for (let i = 0; i < 6; i++) {
      input[text(random() < 0.1 ? 300 : 12)] = text(random() < 0.1 ? 90 : 10);
    }
    const { labels, changed } = sanitizeLabels(input);
    assertValidLabels(labels);
    assert.equal(Object.keys(labels).length, Object.keys(input).length, JSON.stringify(input));
    for (const [key, original] of Object.entries(changed)) {
      assert.equal(input[original.key], original.value);
      assert.ok(key in labels);
    }
    for (const [key, value] of Object.entries(input)) {
      if (!labelKeyProblem(key) && !labelValueProblem(value)) assert.equal(labels[key], value);
    }
  }
});

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

Deno.test("deviceResource() builds the apply body: name, labels, inventory, no status", () => {
  assert.deepEqual(deviceResource(INFO), {
    apiVersion: API_VERSION,
    kind: "Device",
    metadata: { name: "pi-7", labels: { [DEVICE_ID_LABEL]: "pi-7", env: "prod" } },
    spec: { inventory: INFO.inventory },
  });
});

Deno.test("deviceResource() adds the original-labels annotation only for changed labels", () => {
  const body = deviceResource({
    ...INFO,
    labels: { ...INFO.labels, site: "Main St", "Zone X": "a" },
  });
  assert.deepEqual(body.metadata.labels, {
    [DEVICE_ID_LABEL]: "pi-7",
    env: "prod",
    site: "Main-St",
    "Zone-X": "a",
  });
  const annotation = body.metadata.annotations?.[ORIGINAL_LABELS_ANNOTATION] ?? "";
  assert.deepEqual(JSON.parse(annotation), {
    site: { key: "site", value: "Main St" },
    "Zone-X": { key: "Zone X", value: "a" },
  });
  assert.equal(ORIGINAL_LABELS_ANNOTATION, "fleet.nationtech.io/original-labels");
});

Deno.test("deviceResource() has no annotations key when every label is valid", () => {
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
  const again = deviceConflictStatus(conflict, now + 60_000, during);
  assert.equal(
    again.conditions?.[1]?.lastTransitionTime,
    during.conditions?.[1]?.lastTransitionTime,
  );
  const over = deviceConflictStatus(undefined, now + 120_000, again);
  assert.equal(over.conditions?.[1]?.status, "False");
  assert.equal(over.conditions?.[1]?.reason, "OneAgent");
  assert.equal(agentConflictCondition(undefined, now).type, AGENT_CONFLICT);
});
