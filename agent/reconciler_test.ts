import assert from "node:assert/strict";
import {
  ContainerLabels,
  type DeploymentRef,
  type DesiredEntry,
  type PodmanService,
  refKey,
  Score,
} from "../core/mod.ts";
import { createLogger, silentLogger } from "../adapters/logger.ts";
import { MemoryRuntime } from "../testing/memory_runtime.ts";
import { Reconciler } from "./reconciler.ts";
import type { ContainerRuntime } from "./runtime.ts";

const DEVICE = "pi-01";
const STOP_TIMEOUT = 7;

function service(name: string, image: string): PodmanService {
  return { name, image, ports: [], env: [], volumes: [], restartPolicy: "unless-stopped" };
}

function ref(name: string, namespace = "default"): DeploymentRef {
  return { namespace, name };
}

function entry(r: DeploymentRef, services: PodmanService[], generation = 1): DesiredEntry {
  return {
    ref: r,
    generation,
    score: Score.parse({ type: "PodmanV0", data: { services } }),
  };
}

function desiredOf(...entries: DesiredEntry[]): Map<string, DesiredEntry> {
  return new Map(entries.map((e) => [refKey(e.ref), e]));
}

function reconciler(runtime: ContainerRuntime, log = silentLogger): Reconciler {
  return new Reconciler(runtime, log, STOP_TIMEOUT);
}

const noneRetained = () => new Set<string>();

Deno.test("Reconciler.pass() creates the missing services of every desired deployment", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  const desired = desiredOf(
    entry(ref("web"), [service("web", "localhost/web:1"), service("cache", "localhost/cache:1")]),
    entry(ref("api", "team-a"), [service("api", "localhost/api:1")], 4),
  );
  const result = await reconciler(runtime).pass({
    deviceId: DEVICE,
    desired,
    retained: noneRetained,
  });
  assert.equal(result.actions, 3);
  assert.deepEqual(runtime.take(), [
    "ensureImage localhost/web:1",
    "run fleet_pi-01_default_web_web",
    "ensureImage localhost/cache:1",
    "run fleet_pi-01_default_web_cache",
    "ensureImage localhost/api:1",
    "run fleet_pi-01_team-a_api_api",
  ]);
  assert.deepEqual(result.assessments, [
    { ref: ref("web"), generation: 1, phase: "Pending", error: null },
    { ref: ref("api", "team-a"), generation: 4, phase: "Pending", error: null },
  ]);
  const api = runtime.containers.find((c) => c.name === "fleet_pi-01_team-a_api_api");
  assert.equal(api?.labels[ContainerLabels.generation], "4");
  assert.equal(api?.labels[ContainerLabels.managedBy], "fleet-agent");
  assert.deepEqual(result.lingering, new Set());
});

Deno.test("Reconciler.pass() makes no runtime calls when the device has converged", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  const desired = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")]));
  const r = reconciler(runtime);
  await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  runtime.take();

  for (let i = 0; i < 3; i++) {
    const result = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
    assert.equal(result.actions, 0);
    assert.deepEqual(runtime.take(), []);
    assert.deepEqual(result.assessments, [
      { ref: ref("web"), generation: 1, phase: "Running", error: null },
    ]);
  }
});

Deno.test("Reconciler.pass() reports a failing create as Failed and carries on with the rest", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.failCreate.set("localhost/broken:1", "image localhost/broken:1 not found");
  const lines: string[] = [];
  const log = createLogger({ timestamps: false, write: (line) => lines.push(line) });
  const desired = desiredOf(
    entry(ref("bad"), [service("bad", "localhost/broken:1")], 2),
    entry(ref("web"), [service("web", "localhost/web:1")]),
  );
  const r = reconciler(runtime, log);
  const result = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(result.assessments, [
    {
      ref: ref("bad"),
      generation: 2,
      phase: "Failed",
      error: "image localhost/broken:1 not found",
    },
    { ref: ref("web"), generation: 1, phase: "Pending", error: null },
  ]);
  assert.deepEqual(runtime.containers.map((c) => c.name), ["fleet_pi-01_default_web_web"]);
  assert.ok(
    lines.some((l) =>
      l.startsWith("ERROR Could not create container fleet_pi-01_default_bad_bad") &&
      l.includes("image localhost/broken:1 not found")
    ),
    lines.join("\n"),
  );

  // Next pass: the good one is Running, the bad one is tried again and still Failed.
  runtime.take();
  const again = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(runtime.take(), [
    "ensureImage localhost/broken:1",
    "run fleet_pi-01_default_bad_bad",
  ]);
  assert.deepEqual(again.assessments.map((a) => [a.ref.name, a.phase]), [
    ["bad", "Failed"],
    ["web", "Running"],
  ]);
});

Deno.test("Reconciler.pass() reports an unrunnable desired entry as Failed and touches nothing", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("web"), service("web", "localhost/web:1"));
  const desired = new Map<string, DesiredEntry>([[
    "default.web",
    { ref: ref("web"), generation: 3, error: `unknown workload type "WasmV9"` },
  ]]);
  const result = await reconciler(runtime).pass({
    deviceId: DEVICE,
    desired,
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), []);
  assert.equal(runtime.containers.length, 1, "what runs keeps running");
  assert.deepEqual(result.assessments, [
    { ref: ref("web"), generation: 3, phase: "Failed", error: `unknown workload type "WasmV9"` },
  ]);
});

Deno.test("Reconciler.pass() keeps retained deployments and reports them as lingering", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("old"), service("old", "localhost/old:1"));
  runtime.add(ref("web"), service("web", "localhost/web:1"));
  const desired = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")]));
  const r = reconciler(runtime);

  const seen: string[][] = [];
  const kept = await r.pass({
    deviceId: DEVICE,
    desired,
    retained: (refs) => {
      seen.push([...refs].sort());
      return new Set(["default.old"]);
    },
  });
  assert.deepEqual(seen, [["default.old", "default.web"]], "retained() sees every observed ref");
  assert.deepEqual(runtime.take(), []);
  assert.deepEqual(kept.lingering, new Set(["default.old"]));
  assert.deepEqual(kept.assessments.map((a) => a.ref.name), ["web"], "only desired ones assessed");

  const removed = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(runtime.take(), [`remove fleet_pi-01_default_old_old timeout=${STOP_TIMEOUT}`]);
  assert.deepEqual(removed.lingering, new Set(), "removed, so no longer lingering");

  const after = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(after.lingering, new Set());
  assert.deepEqual(runtime.take(), []);
});

Deno.test("Reconciler.pass() counts a deployment whose removal failed as lingering", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("old"), service("old", "localhost/old:1"));
  runtime.failRemove.add("fleet_pi-01_default_old_old");
  const r = reconciler(runtime);
  const result = await r.pass({ deviceId: DEVICE, desired: new Map(), retained: noneRetained });
  assert.deepEqual(result.lingering, new Set(["default.old"]));
  assert.deepEqual(result.assessments, []);

  runtime.failRemove.clear();
  const retried = await r.pass({ deviceId: DEVICE, desired: new Map(), retained: noneRetained });
  assert.deepEqual(retried.lingering, new Set());
  assert.equal(runtime.containers.length, 0);
});

Deno.test("Reconciler.pass() removes before it creates, so names and ports are free", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("old"), service("old", "localhost/old:1"));
  runtime.add(ref("web"), service("web", "localhost/web:1"));
  const desired = desiredOf(
    entry(ref("new"), [service("new", "localhost/new:1")]),
    entry(ref("web"), [service("web", "localhost/web:2")], 2),
  );
  const result = await reconciler(runtime).pass({
    deviceId: DEVICE,
    desired,
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), [
    `remove fleet_pi-01_default_old_old timeout=${STOP_TIMEOUT}`,
    `remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`,
    "ensureImage localhost/new:1",
    "run fleet_pi-01_default_new_new",
    "ensureImage localhost/web:2",
    "run fleet_pi-01_default_web_web",
  ]);
  assert.equal(result.actions, 4);
  const web = runtime.containers.find((c) => c.name === "fleet_pi-01_default_web_web");
  assert.equal(web?.labels[ContainerLabels.generation], "2");
});

Deno.test("Reconciler.pass() skips a deployment's create after its remove failed", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("web"), service("web", "localhost/web:1"));
  runtime.failRemove.add("fleet_pi-01_default_web_web");
  const desired = desiredOf(
    entry(ref("web"), [service("web", "localhost/web:2")], 2),
    entry(ref("api"), [service("api", "localhost/api:1")]),
  );
  const result = await reconciler(runtime).pass({
    deviceId: DEVICE,
    desired,
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), [
    `remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`,
    "ensureImage localhost/api:1",
    "run fleet_pi-01_default_api_api",
  ]);
  assert.deepEqual(result.assessments, [
    {
      ref: ref("web"),
      generation: 2,
      phase: "Failed",
      error: "cannot stop fleet_pi-01_default_web_web: device busy",
    },
    { ref: ref("api"), generation: 1, phase: "Pending", error: null },
  ]);
});

Deno.test("Reconciler.pass() starts a container that was created but not started", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  const id = runtime.add(ref("web"), service("web", "localhost/web:1"), 1, "created");
  const desired = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")]));
  const result = await reconciler(runtime).pass({
    deviceId: DEVICE,
    desired,
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), [`start ${id}`]);
  assert.equal(result.assessments[0]?.phase, "Pending");
});

Deno.test("Reconciler.pass() throws only when the runtime cannot be listed", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.listManaged = () => Promise.reject(new Error("podman socket not found"));
  await assert.rejects(
    reconciler(runtime).pass({ deviceId: DEVICE, desired: new Map(), retained: noneRetained }),
    /podman socket not found/,
  );
});
