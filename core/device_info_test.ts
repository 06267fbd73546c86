import assert from "node:assert/strict";
import { describeIssues } from "./errors.ts";
import {
  DEVICE_ANNOTATIONS_MAX,
  DEVICE_TEXT_MAX,
  DeviceAnnotations,
  DeviceDescription,
  type DeviceInfo,
  splitDeviceLabels,
  unselectableLabels,
  withSelectableLabels,
} from "./device_info.ts";

const INFO: DeviceInfo = {
  deviceId: "pi-1",
  labels: { "fleet.nationtech.io/device-id": "pi-1", site: "lab" },
  inventory: {
    hostname: "pi-1",
    arch: "aarch64",
    os: "linux",
    kernel: "6.8",
    cpuCores: 4,
    memoryMb: 4096,
    agentVersion: "0.1.0",
  },
  updatedAt: "2026-02-01T06:00:00.000Z",
};

Deno.test("splitDeviceLabels() keeps Kubernetes label values selectable, empty and uppercase ones too", () => {
  assert.deepStrictEqual(
    splitDeviceLabels({ site: "Lab_A.2", empty: "", room: "Building 7 / Room 3" }),
    {
      selectable: { site: "Lab_A.2", empty: "" },
      unselectable: { room: "Building 7 / Room 3" },
    },
  );
});

Deno.test("splitDeviceLabels() puts a 64-character value among the unselectable ones", () => {
  const { selectable, unselectable } = splitDeviceLabels({ a: "a".repeat(63), b: "b".repeat(64) });
  assert.deepStrictEqual(Object.keys(selectable), ["a"]);
  assert.deepStrictEqual(Object.keys(unselectable), ["b"]);
});

Deno.test("withSelectableLabels() moves free-text values out of labels and keeps those already apart", () => {
  const view = withSelectableLabels({
    ...INFO,
    labels: { ...INFO.labels, room: "Room 3" },
    unselectableLabels: { floor: "2nd floor" },
  });
  assert.deepStrictEqual(view.labels, INFO.labels);
  assert.deepStrictEqual(view.unselectableLabels, { floor: "2nd floor", room: "Room 3" });
});

Deno.test("withSelectableLabels() leaves valid info as it is, with no empty unselectableLabels", () => {
  assert.deepStrictEqual(withSelectableLabels(INFO), INFO);
  assert.ok(!("unselectableLabels" in withSelectableLabels({ ...INFO, unselectableLabels: {} })));
  const once = withSelectableLabels({ ...INFO, labels: { ...INFO.labels, room: "Room 3" } });
  assert.deepStrictEqual(withSelectableLabels(once), once);
});

Deno.test("unselectableLabels() names each bad value, the rule and a valid form", () => {
  assert.deepStrictEqual(unselectableLabels({ site: "lab", room: "Building 7 / Room 3" }), [{
    key: "room",
    value: "Building 7 / Room 3",
    problem:
      `label value "Building 7 / Room 3" must be at most 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit`,
    suggestion: "building-7-room-3",
  }]);
  assert.deepStrictEqual(unselectableLabels({ site: "lab", none: "" }), []);
});

Deno.test("DeviceDescription takes one line of free text up to its limit", () => {
  assert.equal(
    DeviceDescription.parse("Gateway, by the loading dock / 2nd floor"),
    "Gateway, by the loading dock / 2nd floor",
  );
  const long = DeviceDescription.safeParse("x".repeat(DEVICE_TEXT_MAX + 1));
  assert.match(describeIssues(long.error!), /at most 1024 characters/);
  assert.match(describeIssues(DeviceDescription.safeParse("a\nb").error!), /one line/);
});

Deno.test("DeviceAnnotations take label keys with free-text values, up to a number of them", () => {
  assert.deepStrictEqual(
    DeviceAnnotations.parse({ "example.com/owner": "Facilities, ext. 4411" }),
    {
      "example.com/owner": "Facilities, ext. 4411",
    },
  );
  assert.match(
    describeIssues(DeviceAnnotations.safeParse({ "has space": "x" }).error!),
    /"has space"/,
  );
  const many = Object.fromEntries(
    Array.from({ length: DEVICE_ANNOTATIONS_MAX + 1 }, (_, i) => [`k${i}`, "v"]),
  );
  assert.match(describeIssues(DeviceAnnotations.safeParse(many).error!), /at most 32 annotations/);
});
