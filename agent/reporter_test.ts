import assert from "node:assert/strict";
import {
  type Assessment,
  type DeploymentState,
  type DeviceInfo,
  type Heartbeat,
  Heartbeat as HeartbeatSchema,
} from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { Reporter, type ReportSink } from "./reporter.ts";

/** Our ReportSink port, in memory, that can be switched to failing like an unreachable NATS. */
class MemorySink implements ReportSink {
  failing = false;
  /** Every successful call, in order: `<method> <key>`. */
  readonly calls: string[] = [];
  readonly info = new Map<string, DeviceInfo>();
  readonly states = new Map<string, DeploymentState>();
  readonly heartbeats = new Map<string, Heartbeat>();

  #check(): void {
    if (this.failing) throw new Error("connection closed");
  }
  putDeviceInfo(key: string, info: DeviceInfo): Promise<void> {
    this.#check();
    this.calls.push(`putDeviceInfo ${key}`);
    this.info.set(key, info);
    return Promise.resolve();
  }
  putState(key: string, state: DeploymentState): Promise<void> {
    this.#check();
    this.calls.push(`putState ${key}`);
    this.states.set(key, state);
    return Promise.resolve();
  }
  deleteState(key: string): Promise<void> {
    this.#check();
    this.calls.push(`deleteState ${key}`);
    this.states.delete(key);
    return Promise.resolve();
  }
  putHeartbeat(key: string, heartbeat: Heartbeat): Promise<void> {
    this.#check();
    this.calls.push(`putHeartbeat ${key}`);
    this.heartbeats.set(key, heartbeat);
    return Promise.resolve();
  }
  /** Calls since the last `take()`. */
  take(): string[] {
    return this.calls.splice(0);
  }
}

const DEVICE = "pi-01";
const T0 = Date.parse("2025-06-01T12:00:00Z");

const INFO: DeviceInfo = {
  deviceId: DEVICE,
  labels: { site: "lab", "fleet.nationtech.io/device-id": DEVICE },
  inventory: {
    hostname: "pi-01",
    arch: "aarch64",
    os: "linux",
    kernel: "6.6.0",
    cpuCores: 4,
    memoryMb: 3800,
    agentVersion: "0.1.0",
  },
  updatedAt: "2025-06-01T11:00:00.000Z",
};

function setup() {
  const sink = new MemorySink();
  const lines: string[] = [];
  const clock = new FakeClock(T0);
  const reporter = new Reporter({
    deviceId: DEVICE,
    instance: "k3v9q2xa",
    info: INFO,
    sink,
    log: createLogger({ level: "info", timestamps: false, write: (line) => lines.push(line) }),
    clock,
  });
  return { sink, reporter, lines, clock };
}

function running(name: string, generation = 1): Assessment {
  return { ref: { namespace: "default", name }, generation, phase: "Running", error: null };
}

Deno.test("Reporter.assess() reports only changes of phase, error or generation", async () => {
  const { sink, reporter, clock } = setup();
  assert.equal(reporter.assess(running("web")), true);
  await clock.advance(30_000);
  assert.equal(reporter.assess(running("web")), false, "same phase, error and generation");
  assert.equal(await reporter.sync(), true);
  assert.deepEqual(sink.take(), ["putDeviceInfo info.pi-01", "putState state.pi-01.default.web"]);
  assert.deepEqual(sink.states.get("state.pi-01.default.web"), {
    deviceId: DEVICE,
    namespace: "default",
    deployment: "web",
    generation: 1,
    phase: "Running",
    lastError: null,
    lastEventAt: new Date(T0).toISOString(),
  });

  assert.equal(reporter.assess(running("web")), false);
  assert.equal(await reporter.sync(), true);
  assert.deepEqual(sink.take(), [], "nothing new, nothing sent");

  const failed: Assessment = { ...running("web"), phase: "Failed", error: "image not found" };
  assert.equal(reporter.assess(failed), true);
  assert.equal(reporter.assess(failed), false);
  assert.equal(
    reporter.assess({ ...failed, error: "image\n   still   not found" }),
    true,
    "a new error message is news",
  );
  assert.equal(reporter.assess({ ...failed, error: "image still not found" }), false);
  assert.equal(reporter.assess(running("web", 2)), true, "a new generation is news");
  await reporter.sync();
  assert.deepEqual(sink.take(), ["putState state.pi-01.default.web"]);
  assert.equal(sink.states.get("state.pi-01.default.web")?.generation, 2);
});

Deno.test("Reporter.assess() sends the revision and each service's health and restarts, again when they change", async () => {
  const { sink, reporter } = setup();
  const web = { name: "web", health: "starting" as const, restarts: 0 };
  const pending: Assessment = {
    ...running("web"),
    phase: "Pending",
    revision: "5e0c2a7f9b1d4e36",
    services: [web],
  };
  assert.equal(reporter.assess(pending), true);
  await reporter.sync();
  const state = sink.states.get("state.pi-01.default.web");
  assert.equal(state?.revision, "5e0c2a7f9b1d4e36");
  assert.deepEqual(state?.services, [web]);
  assert.equal(reporter.assess({ ...pending, services: [{ ...web }] }), false);
  const healthy = { ...pending, services: [{ ...web, health: "healthy" as const }] };
  assert.equal(reporter.assess(healthy), true, "a service became healthy");
  assert.equal(
    reporter.assess({ ...healthy, services: [{ ...web, health: "healthy", restarts: 1 }] }),
    true,
    "a restart is news",
  );
  assert.equal(reporter.assess({ ...healthy, revision: "0123456789abcdef" }), true);
});

Deno.test("Reporter.assess() shortens a long error to one line", () => {
  const { reporter } = setup();
  reporter.assess({ ...running("web"), phase: "Failed", error: "x".repeat(1000) + "\ntrace" });
  const state = reporter.states().get("default.web");
  assert.ok(state?.lastError);
  assert.ok(state.lastError.length <= 300);
  assert.ok(!state.lastError.includes("\n"));
});

Deno.test("Reporter.sync() sends DeviceInfo once, then only after republishAll() or updateInfo()", async () => {
  const { sink, reporter, clock } = setup();
  reporter.assess(running("web"));
  reporter.assess(running("api"));
  await reporter.sync();
  assert.deepEqual(sink.take(), [
    "putDeviceInfo info.pi-01",
    "putState state.pi-01.default.web",
    "putState state.pi-01.default.api",
  ]);
  assert.deepEqual(sink.info.get("info.pi-01"), { ...INFO, updatedAt: new Date(T0).toISOString() });
  await reporter.sync();
  await reporter.sync();
  assert.deepEqual(sink.take(), []);

  await clock.advance(1000);
  reporter.republishAll();
  await reporter.sync();
  assert.deepEqual(sink.take(), [
    "putDeviceInfo info.pi-01",
    "putState state.pi-01.default.web",
    "putState state.pi-01.default.api",
  ]);
  assert.equal(sink.info.get("info.pi-01")?.updatedAt, new Date(T0 + 1000).toISOString());

  reporter.updateInfo({ ...INFO, labels: { ...INFO.labels, site: "shop" } });
  await reporter.sync();
  assert.deepEqual(sink.take(), ["putDeviceInfo info.pi-01"], "the states did not change");
  assert.equal(sink.info.get("info.pi-01")?.labels.site, "shop");
});

Deno.test("Reporter.sync() calls made together share one run", async () => {
  const { sink, reporter } = setup();
  reporter.assess(running("web"));
  const first = reporter.sync();
  assert.equal(reporter.sync(), first);
  assert.equal(await first, true);
  assert.equal(sink.take().length, 2);
  await reporter.sync();
  assert.deepEqual(sink.take(), []);
});

Deno.test("Reporter keeps reports pending while the sink fails, warning once, and recovers", async () => {
  const { sink, reporter, lines } = setup();
  reporter.assess(running("web"));
  await reporter.sync();
  sink.take();
  lines.length = 0;

  sink.failing = true;
  reporter.assess({ ...running("web"), phase: "Failed", error: "exited with code 1" });
  reporter.assess(running("api"));
  assert.equal(await reporter.sync(), false);
  await reporter.heartbeat();
  assert.equal(await reporter.sync(), false);
  await reporter.heartbeat();
  assert.deepEqual(sink.take(), []);
  const reportLines = lines.filter((l) => !l.includes("Deployment default/"));
  assert.deepEqual(reportLines, [
    "WARN  Could not send reports to NATS (connection closed); keeping them and retrying",
  ]);

  lines.length = 0;
  sink.failing = false;
  assert.equal(await reporter.sync(), true);
  assert.deepEqual(lines, [
    "INFO  Reports reach NATS again; sending everything that was pending",
  ]);
  assert.deepEqual(sink.take(), [
    "putState state.pi-01.default.web",
    "putState state.pi-01.default.api",
    // Delivery recovered: DeviceInfo goes out again in the same sync.
    "putDeviceInfo info.pi-01",
  ]);
  assert.equal(sink.states.get("state.pi-01.default.web")?.phase, "Failed");
  assert.equal(sink.states.get("state.pi-01.default.web")?.lastError, "exited with code 1");

  // A second streak warns again, once.
  sink.failing = true;
  reporter.republishAll();
  await reporter.sync();
  await reporter.sync();
  assert.equal(lines.filter((l) => l.startsWith("WARN")).length, 1);
});

Deno.test("Reporter republishes everything when a heartbeat is the first delivery to recover", async () => {
  const { sink, reporter } = setup();
  reporter.assess(running("web"));
  await reporter.sync();
  sink.take();
  sink.failing = true;
  await reporter.sync();
  await reporter.heartbeat();
  sink.failing = false;
  await reporter.heartbeat();
  await reporter.sync();
  assert.deepEqual(sink.take(), [
    "putHeartbeat heartbeat.pi-01",
    "putDeviceInfo info.pi-01",
    "putState state.pi-01.default.web",
  ]);
});

Deno.test("Reporter.forget() deletes the state key, also after a failed attempt", async () => {
  const { sink, reporter } = setup();
  reporter.assess(running("web"));
  reporter.assess(running("api"));
  await reporter.sync();
  sink.take();

  reporter.forget("default.web");
  assert.deepEqual([...reporter.states().keys()], ["default.api"]);
  sink.failing = true;
  assert.equal(await reporter.sync(), false);
  sink.failing = false;
  assert.equal(await reporter.sync(), true);
  assert.deepEqual(sink.take(), [
    "deleteState state.pi-01.default.web",
    // Delivery recovered: everything else goes out again in the same sync.
    "putDeviceInfo info.pi-01",
    "putState state.pi-01.default.api",
  ]);
  assert.deepEqual([...sink.states.keys()], ["state.pi-01.default.api"]);

  await reporter.sync();
  assert.deepEqual(sink.take(), [], "deleted once");
  reporter.forget("default.never-assessed");
  await reporter.sync();
  assert.deepEqual(sink.take(), [], "nothing to delete for a deployment never reported");
});

Deno.test("Reporter.assess() after forget() reports the deployment again", async () => {
  const { sink, reporter } = setup();
  reporter.assess(running("web"));
  await reporter.sync();
  reporter.forget("default.web");
  reporter.assess(running("web"));
  await reporter.sync();
  sink.take();
  assert.ok(sink.states.has("state.pi-01.default.web"));
});

Deno.test("Reporter.heartbeat() puts {deviceId, at, instance} under the device's key", async () => {
  const { sink, reporter, clock } = setup();
  await clock.advance(1234);
  await reporter.heartbeat();
  assert.deepEqual(sink.take(), ["putHeartbeat heartbeat.pi-01"]);
  const beat = sink.heartbeats.get("heartbeat.pi-01");
  assert.deepEqual(beat, { deviceId: DEVICE, at: T0 + 1234, instance: "k3v9q2xa" });
  assert.deepEqual(HeartbeatSchema.parse(beat), beat);
  assert.ok(JSON.stringify(beat).length < 100);
});

Deno.test("Reporter standing by sends heartbeats only, keeps the rest, sends it all on taking over", async () => {
  const { sink, reporter } = setup();
  reporter.standBy(true);
  reporter.assess(running("web"));
  assert.equal(await reporter.sync(), true);
  await reporter.heartbeat();
  assert.deepEqual(sink.take(), ["putHeartbeat heartbeat.pi-01"]);
  reporter.standBy(false);
  await reporter.sync();
  assert.deepEqual(sink.take(), ["putDeviceInfo info.pi-01", "putState state.pi-01.default.web"]);
});
