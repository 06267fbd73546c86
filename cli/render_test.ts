import assert from "node:assert/strict";
import YAML from "yaml";
import { targetingLabels } from "../core/mod.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import type { DeploymentRow, DeviceRow } from "./nats_store.ts";
import { renderDeployments, renderDevices } from "./render.ts";
import { storedDeployment } from "../testing/operator_fakes.ts";

const NOW = Date.parse("2026-02-01T06:00:00Z");

/** A device of an older agent, whose free-text label value sits among its labels. */
const OLDER: DeviceRow = {
  info: testDeviceInfo("pi-old", { site: "lab" }),
  labels: targetingLabels("pi-old", { site: "lab" }),
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
  labels: targetingLabels("pi-new", { site: "lab" }),
  lastSeen: NOW - 5_000,
};

Deno.test("renderDevices() shows labels no selector can match as not selectable, an older agent's too, with a note", () => {
  const table = renderDevices([NEWER, OLDER], "table", NOW);
  const [, newer, older] = table.split("\n");
  assert.match(newer ?? "", /site=lab\s+site=lab,room="Lab A, 2nd floor" \(not selectable\)$/);
  assert.match(older ?? "", /site=lab,room="Building 7 \/ Room 3" \(not selectable\)$/);
  assert.match(table, /Labels marked \(not selectable\) are not Kubernetes label values/);
  assert.doesNotMatch(table, /Gateway/, "the description is for the wide view");
});

Deno.test("renderDevices() adds no note when every label is selectable", () => {
  const plain: DeviceRow = {
    info: testDeviceInfo("pi-1", { site: "lab" }),
    labels: targetingLabels("pi-1", { site: "lab" }),
    lastSeen: NOW,
  };
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
  assert.match(header ?? "", /DESCRIPTION\s+ANNOTATIONS\s+LABELS\s+REPORTED$/);
  assert.match(
    first ?? "",
    /Gateway by the loading dock\s+owner=Facilities, ext\. 4411\s+site=lab/,
  );
  assert.match(second ?? "", /line one line two/);
});

Deno.test("renderDevices() shows the labels deployments select on, and what a device reports only where it differs", () => {
  const claiming: DeviceRow = {
    info: testDeviceInfo("pi-2", { site: "vault" }),
    labels: targetingLabels("pi-2", undefined),
    lastSeen: NOW,
  };
  const agreeing: DeviceRow = {
    info: testDeviceInfo("pi-1", { site: "lab" }),
    labels: targetingLabels("pi-1", { site: "lab", rack: "r1" }),
    lastSeen: NOW,
  };
  const table = renderDevices([agreeing, claiming], "table", NOW);
  const [header, first, second] = table.split("\n");
  assert.match(header ?? "", /LABELS\s+REPORTED$/);
  assert.match(first ?? "", /site=lab,rack=r1\s*$/);
  assert.match(second ?? "", /0\.0\.0-test\s+site=vault$/, "no labels, what it reports");
  assert.match(table, /Deployments select on LABELS only: set them with fleet device label/);
  assert.equal(renderDevices([agreeing], "table", NOW).split("\n").length, 2);
  const { items } = YAML.parse(renderDevices([claiming], "yaml", NOW));
  assert.deepEqual(items[0].labels, { "fleet.nationtech.io/device-id": "pi-2" });
  assert.deepEqual(items[0].reportedLabels, {
    "fleet.nationtech.io/device-id": "pi-2",
    site: "vault",
  });
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
    labels: targetingLabels("pi-1", { site: "lab" }),
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

const REFUSAL = "generation 3 refused: spec.score.data.services[0].env[0].value: environment " +
  'variable "BIG" is 140004 bytes as NAME=value; devices keep generation 2 until a valid one ' +
  "is applied";

const ONE_RUNNING = { matchedDeviceCount: 1, succeeded: 1, failed: 0, pending: 0, unreachable: 0 };

/** `web`, generation 3 refused by the operator (its spec unreadable), status of generation 2. */
function refusedRow(): DeploymentRow {
  const { spec: _, ...deployment } = storedDeployment("web", { matchLabels: { site: "a" } });
  return {
    deployment: { ...deployment, metadata: { ...deployment.metadata, generation: 3 } },
    status: {
      namespace: "default",
      name: "web",
      observedGeneration: 2,
      aggregate: { ...ONE_RUNNING, lastError: null },
      updatedAt: "",
    },
    refused: REFUSAL,
  };
}

Deno.test("renderDeployments() marks a refused generation with ! and says why under the table", () => {
  const ok: DeploymentRow = {
    deployment: storedDeployment("api", { matchLabels: { site: "a" } }),
    status: undefined,
  };
  const table = renderDeployments([ok, refusedRow()], "table", NOW);
  const [, api, web, blank, note] = table.split("\n");
  assert.match(api ?? "", /^default\s+api\s+1\*\s/);
  assert.match(web ?? "", /^default\s+web\s+3!\s+1\s+1\s/);
  assert.equal(blank, "");
  assert.equal(note, `default/web ${REFUSAL}`);
  const wide = renderDeployments([refusedRow()], "wide", NOW);
  assert.match(wide.split("\n")[1] ?? "", /\s-\s+-\s*$/, "no images nor selector to show");
});

Deno.test("renderDeployments() adds a ROLLOUT column once a deployment rolls out progressively", () => {
  const immediate: DeploymentRow = {
    deployment: storedDeployment("api", { matchLabels: { site: "a" } }),
    status: undefined,
  };
  assert.doesNotMatch(renderDeployments([immediate], "table", NOW), /ROLLOUT/);
  const aggregate = {
    matchedDeviceCount: 4,
    succeeded: 1,
    failed: 0,
    pending: 3,
    unreachable: 0,
    lastError: null,
  };
  const rollout = {
    phase: "Progressing" as const,
    revision: { number: 3, hash: "abc" },
    stable: { number: 2, hash: "def" },
    currentBatch: 2,
    batches: [0, 1, 2].map(() => ({
      selected: 1,
      updated: 0,
      healthy: 0,
      failed: 0,
      timedOut: 0,
      offline: 0,
    })),
    population: 4,
    joined: 0,
    startedAt: "2026-02-01T05:00:00Z",
    message: "",
    conditions: [],
  };
  const progressive: DeploymentRow = {
    deployment: storedDeployment("web", { matchLabels: { site: "a" } }),
    status: {
      namespace: "default",
      name: "web",
      observedGeneration: 1,
      aggregate,
      rollout,
      updatedAt: "2026-02-01T05:59:00Z",
    },
  };
  const table = renderDeployments([immediate, progressive], "table", NOW);
  const [header, api, web] = table.split("\n");
  assert.match(header ?? "", /^NAMESPACE\s+NAME\s+GEN\s+ROLLOUT\s+MATCHED/);
  assert.match(api ?? "", /^default\s+api\s+1\*\s+-\s/);
  assert.match(web ?? "", /^default\s+web\s+1\s+rev 3 Progressing 2\/3\s+4\s/);
  const done = {
    ...progressive,
    status: { ...progressive.status!, rollout: { ...rollout, phase: "RolledBack" as const } },
  };
  assert.match(renderDeployments([done], "table", NOW), /rev 3 RolledBack\s/);
});

Deno.test("renderDeployments() gives JSON and YAML readers the refusal, null when there is none", () => {
  const json = JSON.parse(renderDeployments([refusedRow()], "json", NOW));
  assert.equal(json.items[0].refused, REFUSAL);
  assert.equal(json.items[0].spec, undefined);
  const ok: DeploymentRow = {
    deployment: storedDeployment("api", { matchLabels: { site: "a" } }),
    status: undefined,
  };
  assert.equal(YAML.parse(renderDeployments([ok], "yaml", NOW)).items[0].refused, null);
});
