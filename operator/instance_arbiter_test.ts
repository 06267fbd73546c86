import assert from "node:assert/strict";
import type { InstanceConflict } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { MemoryAgentConflictStore, RecordingDeviceSink } from "../testing/operator_fakes.ts";
import { DeviceMirror } from "./device_mirror.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import { InstanceArbiter } from "./instance_arbiter.ts";

const STALE_MS = 90_000;

function setup(store = new MemoryAgentConflictStore()) {
  const clock = new FakeClock();
  const view = new FleetView();
  const sink = new RecordingDeviceSink();
  const arbiter = new InstanceArbiter({
    view,
    store,
    clock,
    log: silentLogger,
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    conflictChanged: (deviceId, conflict) => sink.agentConflictChanged(deviceId, conflict),
  });
  const beat = (instance: string, deviceId = "pi-1") =>
    arbiter.onHeartbeat({ type: "put", deviceId, brokerAt: clock.now(), instance });
  return { clock, view, sink, store, arbiter, beat };
}

/** Lets the store writes the arbiter started settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("InstanceArbiter: two agents taking turns are a conflict, stored once, shown once", async () => {
  const { clock, view, sink, store, arbiter, beat } = setup();
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  beat("aaaaaa");
  await clock.advance(10_000);
  beat("bbbbbb");
  assert.equal(view.agentConflicts.size, 0, "b alone could be a's restart");
  await clock.advance(20_000);
  beat("aaaaaa");
  await settle();
  assert.equal(view.agentConflicts.get("pi-1")?.owner, "aaaaaa");
  assert.deepEqual(store.stored.get("pi-1")?.standby, ["bbbbbb"]);
  for (let i = 0; i < 5; i++) {
    await clock.advance(15_000);
    beat(i % 2 ? "aaaaaa" : "bbbbbb");
  }
  await settle();
  assert.equal(store.writes, 1, "a standing conflict is written once");
  assert.deepEqual(sink.calls, ["pi-1 conflict: aaaaaa keeps, bbbbbb stand by"]);
});

Deno.test("InstanceArbiter: an agent restart is no conflict and writes nothing", async () => {
  const { clock, view, store, arbiter, beat } = setup();
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  beat("aaaaaa");
  await clock.advance(30_000);
  beat("aaaaaa");
  await clock.advance(5_000);
  beat("bbbbbb");
  await clock.advance(30_000);
  beat("bbbbbb");
  await clock.advance(120_000);
  beat("bbbbbb");
  await settle();
  assert.equal(view.agentConflicts.size, 0);
  assert.equal(store.writes, 0);
});

Deno.test("InstanceArbiter: the conflict ends when one agent stops, and the key goes", async () => {
  const { clock, view, sink, store, arbiter, beat } = setup();
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  beat("aaaaaa");
  await clock.advance(1_000);
  beat("bbbbbb");
  await clock.advance(1_000);
  beat("aaaaaa");
  await settle();
  assert.ok(store.stored.has("pi-1"));
  // b is stopped; a keeps sending, and the scan notices b's silence.
  const signal = new AbortController();
  const running = arbiter.run(signal.signal);
  for (let i = 0; i < 4; i++) {
    await clock.advance(30_000);
    beat("aaaaaa");
  }
  await settle();
  assert.equal(view.agentConflicts.size, 0);
  assert.equal(store.stored.has("pi-1"), false);
  assert.equal(sink.calls.at(-1), "pi-1 conflict over");
  signal.abort();
  await clock.advance(1_000);
  await running;
});

Deno.test("InstanceArbiter: a stored decision survives an operator restart; its owner stays", async () => {
  const store = new MemoryAgentConflictStore();
  const stored: InstanceConflict = {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: "2026-01-01T00:00:00.000Z",
  };
  store.stored.set("pi-1", stored);
  const { clock, view, arbiter, beat } = setup(store);
  await arbiter.load();
  assert.deepEqual(view.agentConflicts.get("pi-1"), stored);
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  // Before every instance was seen again, silence proves nothing.
  beat("bbbbbb");
  arbiter.scan();
  assert.deepEqual(view.agentConflicts.get("pi-1"), stored);
  await clock.advance(10_000);
  beat("aaaaaa");
  await clock.advance(10_000);
  beat("bbbbbb");
  await settle();
  assert.equal(view.agentConflicts.get("pi-1")?.owner, "aaaaaa", "b was seen first this time");
  assert.equal(store.writes, 0, "the same decision is not written again");
});

Deno.test("InstanceArbiter: a failed write is tried again at the next scan", async () => {
  const { clock, store, arbiter, beat } = setup();
  store.failing = true;
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  beat("aaaaaa");
  await clock.advance(1_000);
  beat("bbbbbb");
  await clock.advance(1_000);
  beat("aaaaaa");
  await settle();
  assert.equal(store.stored.size, 0);
  store.failing = false;
  arbiter.scan();
  await settle();
  assert.equal(store.stored.get("pi-1")?.owner, "aaaaaa");
});

Deno.test("InstanceArbiter: heartbeats read before the live ones and those of older agents judge nothing", async () => {
  const { clock, view, arbiter, beat } = setup();
  beat("aaaaaa");
  beat("bbbbbb");
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  await clock.advance(1_000);
  beat("aaaaaa");
  arbiter.onHeartbeat({ type: "put", deviceId: "pi-1", brokerAt: clock.now() });
  await settle();
  assert.equal(view.agentConflicts.size, 0);
});

Deno.test("DeviceMirror ignores the info of a standby agent: the device's reported info does not flap", () => {
  const view = new FleetView();
  const shown: string[] = [];
  const mirror = new DeviceMirror({
    view,
    deviceSink: {
      deviceChanged: (info) => shown.push(`${info.deviceId} site=${info.labels.site}`),
      reachabilityChanged: () => {},
      deviceRemoved: () => {},
      agentConflictChanged: () => {},
    },
    initialRead: new InitialRead([]),
    clock: new FakeClock(),
    log: silentLogger,
    staleAfterMs: STALE_MS,
    scanIntervalMs: 1_000,
    labelsChanged: () => {},
    aggregateChanged: () => {},
  });
  view.agentConflicts.set("pi-1", {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: "2026-01-01T00:00:00.000Z",
  });
  mirror.onInfo({
    type: "put",
    info: { ...testDeviceInfo("pi-1", { site: "a" }), instance: "aaaaaa" },
  });
  mirror.onInfo({
    type: "put",
    info: { ...testDeviceInfo("pi-1", { site: "b" }), instance: "bbbbbb" },
  });
  mirror.onInfo({ type: "put", info: testDeviceInfo("pi-1", { site: "c" }) });
  assert.deepEqual(shown, ["pi-1 site=a", "pi-1 site=c"], "an older agent without instance counts");
});

Deno.test("InstanceArbiter: a standing decision is written again after the store lost it", async () => {
  const { clock, store, arbiter, beat } = setup();
  arbiter.onHeartbeat({ type: "ready", restarted: false });
  beat("aaaaaa");
  await clock.advance(1_000);
  beat("bbbbbb");
  await clock.advance(1_000);
  beat("aaaaaa");
  await settle();
  const decision = store.stored.get("pi-1");
  assert.ok(decision);
  store.stored.clear(); // the desired-state bucket was wiped and came back empty
  arbiter.rewriteAll();
  await settle();
  assert.deepEqual(store.stored.get("pi-1"), decision);
});
