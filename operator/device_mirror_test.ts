import assert from "node:assert/strict";
import { type DeploymentRef, DEVICE_ID_LABEL, type Labels, matchesSelector } from "../core/mod.ts";
import { createLogger, silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { RecordingDeviceSink, storedDeployment } from "../testing/operator_fakes.ts";
import { DeviceMirror } from "./device_mirror.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";

const HOUR = 3_600_000;
const STALE_MS = 90_000;
const WEB: DeploymentRef = { namespace: "default", name: "web" };

function setup() {
  const clock = new FakeClock();
  const view = new FleetView({ allowUnbound: true });
  const sink = new RecordingDeviceSink();
  const initialRead = new InitialRead(["reports"]);
  const dirty: string[] = [];
  const mirror = new DeviceMirror({
    view,
    deviceSink: sink,
    initialRead,
    clock,
    log: silentLogger,
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    labelsChanged: () => {},
    aggregateChanged: (ref) => dirty.push(ref.name),
  });
  return { clock, view, sink, initialRead, dirty, mirror };
}

Deno.test("DeviceMirror dates a stored heartbeat by the broker and a live one by its arrival", () => {
  const { clock, view, sink, initialRead, mirror } = setup();
  const now = clock.now();
  for (const id of ["old", "recent", "future"]) {
    mirror.onInfo({ type: "put", info: testDeviceInfo(id, { site: "a" }) });
  }
  // The initial read: values stored before the operator started, dated by the broker.
  mirror.onHeartbeat({ type: "put", deviceId: "old", brokerAt: now - 2 * HOUR });
  mirror.onHeartbeat({ type: "put", deviceId: "recent", brokerAt: now - 1_000 });
  mirror.onHeartbeat({ type: "put", deviceId: "future", brokerAt: now + HOUR });
  mirror.onHeartbeat({ type: "ready", restarted: false });
  initialRead.done("reports");
  mirror.reportAll();
  assert.deepEqual(sink.calls.filter((c) => !c.endsWith("changed")), [
    "old unreachable",
    "recent reachable",
    "future reachable",
  ]);
  assert.equal(view.lastSeen.get("old"), now - 2 * HOUR);
  assert.equal(view.lastSeen.get("recent"), now - 1_000);
  assert.equal(view.lastSeen.get("future"), now, "never later than the operator's now");

  // Live: it arrived now, whatever the broker's clock says.
  mirror.onHeartbeat({ type: "put", deviceId: "old", brokerAt: now - 3 * HOUR });
  assert.equal(view.lastSeen.get("old"), now);
  assert.equal(sink.calls.at(-1), "old reachable");
  assert.equal(sink.lastSeen.get("old"), now);

  // While the bucket is read again, values are stored ones once more.
  mirror.onHeartbeat({ type: "restart" });
  mirror.onHeartbeat({ type: "put", deviceId: "recent", brokerAt: now - HOUR });
  assert.equal(view.lastSeen.get("recent"), now - HOUR);
});

Deno.test("DeviceMirror reports each crossing of the staleness line once, on its clock", async () => {
  const { clock, view, sink, initialRead, dirty, mirror } = setup();
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }));
  mirror.onRegistry({ type: "put", deviceId: "d1", labels: { site: "a" } });
  mirror.onInfo({ type: "put", info: testDeviceInfo("d1", { site: "a" }) });
  view.resolveTargets(WEB);
  mirror.onHeartbeat({ type: "ready", restarted: false });
  initialRead.done("reports");
  mirror.reportAll();
  const controller = new AbortController();
  const running = mirror.run(controller.signal);

  mirror.onHeartbeat({ type: "put", deviceId: "d1", brokerAt: 0 });
  assert.deepEqual(sink.calls, ["d1 changed", "d1 unreachable", "d1 reachable"]);
  assert.deepEqual(dirty, ["web"]);
  await clock.advance(STALE_MS);
  assert.equal(sink.calls.length, 3, "not stale at exactly the limit");
  await clock.advance(1_000);
  assert.deepEqual(sink.calls.slice(3), ["d1 unreachable"]);
  await clock.advance(2 * STALE_MS);
  assert.equal(sink.calls.length, 4, "a crossing is reported once");
  assert.deepEqual(dirty, ["web", "web"]);
  mirror.onHeartbeat({ type: "put", deviceId: "d1", brokerAt: 0 });
  assert.deepEqual(sink.calls.slice(4), ["d1 reachable"]);
  assert.equal(sink.lastSeen.get("d1"), clock.now());
  controller.abort();
  await running;
});

Deno.test("DeviceMirror never targets an older agent's device by a free-text label value, not even with Exists", () => {
  const changed: [string, Labels | undefined][] = [];
  const view = new FleetView({ allowUnbound: true });
  const mirror = new DeviceMirror({
    view,
    deviceSink: undefined,
    initialRead: new InitialRead(["reports"]),
    clock: new FakeClock(),
    log: silentLogger,
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    labelsChanged: (id, labels) => changed.push([id, labels]),
    aggregateChanged: () => {},
  });
  mirror.onRegistry({ type: "put", deviceId: "old", labels: { site: "a" } });
  const info = testDeviceInfo("old", { site: "a" });
  info.labels.room = "Building 7 / Room 3";
  mirror.onInfo({ type: "put", info });
  const labels = { "fleet.nationtech.io/device-id": "old", site: "a" };
  assert.deepEqual(changed, [["old", labels]]);
  assert.deepEqual(view.devices.get("old"), labels);
  const byRoom = storedDeployment("web", {
    matchExpressions: [{ key: "room", operator: "Exists" }],
  });
  assert.equal(matchesSelector(byRoom.spec.targetSelector, view.devices.get("old") ?? {}), false);
});

Deno.test("DeviceMirror targets on the label registry: what a device reports changes nothing, device-id is always its own, and unregistered reported labels are warned about once", () => {
  const changed: [string, Labels | undefined][] = [];
  const lines: string[] = [];
  const view = new FleetView({ allowUnbound: true });
  const initialRead = new InitialRead(["reports"]);
  initialRead.done("reports");
  const mirror = new DeviceMirror({
    view,
    deviceSink: undefined,
    initialRead,
    clock: new FakeClock(),
    log: createLogger({ level: "info", timestamps: false, write: (l) => lines.push(l) }),
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    labelsChanged: (id, labels) => changed.push([id, labels]),
    aggregateChanged: () => {},
  });
  const own = { [DEVICE_ID_LABEL]: "evil" };

  // No registry entry: it claims a site and another device's id, and has only its own id.
  mirror.onInfo({
    type: "put",
    info: testDeviceInfo("evil", { site: "vault", [DEVICE_ID_LABEL]: "vault-1" }),
  });
  assert.deepEqual(view.devices.get("evil"), own);
  mirror.onInfo({ type: "put", info: testDeviceInfo("evil", { site: "elsewhere" }) });
  assert.deepEqual(changed, [["evil", own]], "a new report is no relabelling");
  const warnings = lines.filter((l) => l.startsWith("WARN"));
  assert.equal(warnings.length, 1, lines.join("\n"));
  assert.match(
    warnings[0]!,
    /Device evil reports the labels site=vault, which the label registry does not give it \(it has no entry yet\): deployments selecting them do not reach it.*fleet device label evil --from-reported/,
  );

  // A person labels it: the registry's labels, never its id; removing the entry takes them away.
  mirror.onRegistry({
    type: "put",
    deviceId: "evil",
    labels: { site: "lab", [DEVICE_ID_LABEL]: "x" },
  });
  assert.deepEqual(view.devices.get("evil"), { site: "lab", [DEVICE_ID_LABEL]: "evil" });
  mirror.onRegistry({ type: "delete", deviceId: "evil" });
  assert.deepEqual(view.devices.get("evil"), own);
  assert.equal(changed.length, 3);

  // An entry for a device that has not reported yet waits for it.
  mirror.onRegistry({ type: "put", deviceId: "new", labels: { site: "lab" } });
  assert.equal(view.devices.has("new"), false);
  mirror.onInfo({ type: "put", info: testDeviceInfo("new") });
  assert.deepEqual(view.devices.get("new"), { site: "lab", [DEVICE_ID_LABEL]: "new" });
});

Deno.test("DeviceMirror checks the devices of the first read once the registry is read too, and names them in one warning", () => {
  const lines: string[] = [];
  const view = new FleetView({ allowUnbound: true });
  const initialRead = new InitialRead(["reports"]);
  const mirror = new DeviceMirror({
    view,
    deviceSink: undefined,
    initialRead,
    clock: new FakeClock(),
    log: createLogger({ level: "info", timestamps: false, write: (l) => lines.push(l) }),
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    labelsChanged: () => {},
    aggregateChanged: () => {},
  });
  // An upgraded fleet: eight devices report site=a; the registry, read after them, has one.
  for (let i = 1; i <= 8; i++) {
    mirror.onInfo({ type: "put", info: testDeviceInfo(`d${i}`, { site: "a" }) });
  }
  mirror.onRegistry({ type: "put", deviceId: "d1", labels: { site: "a" } });
  assert.deepEqual(lines, []);
  initialRead.done("reports");
  mirror.reportAll();
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(
    lines[0]!,
    /^WARN +7 device\(s\) report labels the label registry does not give them, so deployments selecting those labels do not reach them: d2 \(site=a\), d3 \(site=a\), d4 \(site=a\), d5 \(site=a\), d6 \(site=a\), and 2 more\. If they are right, copy them with `fleet device label <device> --from-reported`/,
  );
  // Warned once: their next reports say nothing more.
  mirror.onInfo({ type: "put", info: testDeviceInfo("d2", { site: "a" }) });
  assert.equal(lines.length, 1);
});
