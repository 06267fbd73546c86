import assert from "node:assert/strict";
import YAML from "yaml";
import { testDeviceInfo } from "../testing/devices.ts";
import type { DeviceRow } from "./nats_store.ts";
import { renderDevices } from "./render.ts";

const NOW = Date.parse("2026-02-01T06:00:00Z");

/** A device of an older agent, whose free-text label value sits among its labels. */
const OLDER: DeviceRow = {
  info: testDeviceInfo("pi-old", { site: "lab" }),
  lastSeen: NOW - 5_000,
};
OLDER.info.labels.room = "Building 7 / Room 3";

const NEWER: DeviceRow = {
  info: {
    ...testDeviceInfo("pi-new", { site: "lab" }),
    unselectableLabels: { room: "Lab A, 2nd floor" },
    description: "Gateway by the loading dock",
    annotations: { owner: "Facilities, ext. 4411" },
  },
  lastSeen: NOW - 5_000,
};

Deno.test("renderDevices() shows labels no selector can match as not selectable, an older agent's too, with a note", () => {
  const table = renderDevices([NEWER, OLDER], "table", NOW);
  const [, newer, older] = table.split("\n");
  assert.match(newer ?? "", /site=lab,room="Lab A, 2nd floor" \(not selectable\)$/);
  assert.match(older ?? "", /site=lab,room="Building 7 \/ Room 3" \(not selectable\)$/);
  assert.match(table, /Labels marked \(not selectable\) are not Kubernetes label values/);
  assert.doesNotMatch(table, /Gateway/, "the description is for the wide view");
});

Deno.test("renderDevices() adds no note when every label is selectable", () => {
  const plain: DeviceRow = { info: testDeviceInfo("pi-1", { site: "lab" }), lastSeen: NOW };
  const table = renderDevices([plain], "table", NOW);
  assert.equal(table.split("\n").length, 2);
  assert.match(table, /site=lab$/);
});

Deno.test("renderDevices() wide shows the description and annotations, on one line", () => {
  const multiline: DeviceRow = {
    ...NEWER,
    info: { ...NEWER.info, description: "line one\nline two" },
  };
  const table = renderDevices([NEWER, multiline], "wide", NOW);
  const [header, first, second] = table.split("\n");
  assert.match(header ?? "", /DESCRIPTION\s+ANNOTATIONS\s+LABELS$/);
  assert.match(
    first ?? "",
    /Gateway by the loading dock\s+owner=Facilities, ext\. 4411\s+site=lab/,
  );
  assert.match(second ?? "", /line one line two/);
});

Deno.test("renderDevices() yaml keeps only selectable labels in labels and the rest in unselectableLabels", () => {
  const { items } = YAML.parse(renderDevices([NEWER, OLDER], "yaml", NOW));
  assert.deepEqual(items[0].labels, { "fleet.nationtech.io/device-id": "pi-new", site: "lab" });
  assert.deepEqual(items[0].unselectableLabels, { room: "Lab A, 2nd floor" });
  assert.equal(items[0].description, "Gateway by the loading dock");
  assert.deepEqual(items[0].annotations, { owner: "Facilities, ext. 4411" });
  assert.deepEqual(items[1].labels, { "fleet.nationtech.io/device-id": "pi-old", site: "lab" });
  assert.deepEqual(items[1].unselectableLabels, { room: "Building 7 / Room 3" });
});

Deno.test("renderDevices() marks a device two agents run as, and says who keeps it and what to do", () => {
  const conflicted: DeviceRow = {
    info: testDeviceInfo("pi-1", { site: "lab" }),
    lastSeen: NOW,
    agentConflict: {
      deviceId: "pi-1",
      owner: "aaaaaa",
      standby: ["bbbbbb"],
      since: new Date(NOW).toISOString(),
    },
  };
  const table = renderDevices([conflicted], "table", NOW);
  assert.match(table.split("\n")[1] ?? "", /^pi-1\s+yes, 2 agents!/);
  assert.match(table, /pi-1: 2 agents run with this device id \(instances aaaaaa, bbbbbb\)/);
  assert.match(table, /aaaaaa keeps the containers; bbbbbb stand\(s\) by/);
  const { items } = YAML.parse(renderDevices([conflicted], "yaml", NOW));
  assert.equal(items[0].agentConflict.owner, "aaaaaa");
});
