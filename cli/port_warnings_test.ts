import assert from "node:assert/strict";
import { API_VERSION, Deployment, DEVICE_ID_LABEL, type StoredDeployment } from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import type { DeviceRow, FleetStore } from "./nats_store.ts";
import { portConflictWarnings, warnOfPortConflicts } from "./port_warnings.ts";

function deployment(name: string, ports: string[], createdAt?: string): StoredDeployment {
  const d = Deployment.parse({
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, ...(createdAt ? { creationTimestamp: createdAt } : {}) },
    spec: {
      targetSelector: { matchLabels: { site: "lab" } },
      score: { type: "PodmanV0", data: { services: [{ name: "main", image: "img:1", ports }] } },
    },
  });
  return { ...d, metadata: { ...d.metadata, generation: 1 } };
}

function devices(count: number, labels = { site: "lab" }): DeviceRow[] {
  return Array.from({ length: count }, (_, i) => ({
    info: testDeviceInfo(`pi-${i + 1}`),
    labels: { ...labels, [DEVICE_ID_LABEL]: `pi-${i + 1}` },
    lastSeen: undefined,
  }));
}

const WEB = deployment("web", ["8080:80"], "2030-01-01T00:00:00Z");

Deno.test("portConflictWarnings() looks at the labels targeting uses, not what devices report", () => {
  const api = deployment("api", ["8080:8080"]);
  const rows = [{ deployment: WEB, status: undefined }];
  const claiming: DeviceRow[] = [{
    info: testDeviceInfo("pi-1", { site: "lab" }),
    labels: { [DEVICE_ID_LABEL]: "pi-1" },
    lastSeen: undefined,
  }];
  assert.deepEqual(portConflictWarnings(api, rows, claiming), []);
});

Deno.test("portConflictWarnings() names the port, its holder and the devices, five at most", () => {
  const api = deployment("api", ["8080:8080", "9090:90"]);
  const rows = [{ deployment: WEB, status: undefined }];
  assert.deepEqual(portConflictWarnings(api, rows, devices(2)), [
    "port 8080/tcp is already used by deployment default/web on 2 device(s) (pi-1, pi-2); " +
    "deployment default/api will be Failed there",
  ]);
  assert.deepEqual(portConflictWarnings(api, rows, devices(7)), [
    "port 8080/tcp is already used by deployment default/web on 7 device(s) " +
    "(pi-1, pi-2, pi-3, pi-4, pi-5, and 2 more); deployment default/api will be Failed there",
  ]);
  assert.deepEqual(portConflictWarnings(api, rows, devices(2, { site: "elsewhere" })), []);
  assert.deepEqual(portConflictWarnings(deployment("api", ["8080:80/udp"]), rows, devices(2)), []);
});

/** A store that serves `web` on two devices, counting reads, or failing them. */
function store(fail = false) {
  const reads: string[] = [];
  const read = <T>(what: string, value: T) => {
    reads.push(what);
    return fail ? Promise.reject(new Error("permission denied")) : Promise.resolve(value);
  };
  const fake: FleetStore = {
    apply: () => Promise.reject(new Error("not here")),
    delete: () => Promise.reject(new Error("not here")),
    deployments: () => read("deployments", [{ deployment: WEB, status: undefined }]),
    devices: () => read("devices", devices(2)),
  };
  return { fake, reads };
}

function capture() {
  const lines: string[] = [];
  const log = createLogger({ level: "warn", timestamps: false, write: (l) => lines.push(l) });
  return { log, lines };
}

Deno.test("warnOfPortConflicts() warns on the log, reads nothing for a deployment without host ports", async () => {
  const { fake, reads } = store();
  const { log, lines } = capture();
  await warnOfPortConflicts(fake, deployment("api", ["8080:80"]), log);
  assert.deepEqual(lines, [
    "WARN  port 8080/tcp is already used by deployment default/web on 2 device(s) " +
    "(pi-1, pi-2); deployment default/api will be Failed there",
  ]);
  assert.deepEqual(reads.sort(), ["deployments", "devices"]);
  await warnOfPortConflicts(fake, deployment("worker", []), log);
  assert.equal(reads.length, 2);
});

Deno.test("warnOfPortConflicts() turns a failed read into a warning", async () => {
  const { fake } = store(true);
  const { log, lines } = capture();
  await warnOfPortConflicts(fake, deployment("api", ["8080:80"]), log);
  assert.deepEqual(lines, [
    "WARN  Could not check the host ports of the fleet: permission denied",
  ]);
});
