import assert from "node:assert/strict";
import {
  type Assessment,
  ContainerLabels,
  type DeploymentRef,
  type DesiredEntry,
  PodmanService,
  refKey,
  Score,
} from "../core/mod.ts";
import { createLogger, type Logger, silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
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

/** A reconciler on `clock` with no jitter; `minReadyMs` 0 makes a running container ready at once. */
function reconciler(
  runtime: ContainerRuntime,
  log: Logger = silentLogger,
  { clock = new FakeClock(), minReadyMs = 0 }: { clock?: FakeClock; minReadyMs?: number } = {},
): Reconciler {
  return new Reconciler({
    runtime,
    log,
    stopTimeoutSeconds: STOP_TIMEOUT,
    minReadyMs,
    clock,
    random: () => 0,
  });
}

const noneRetained = () => new Set<string>();

/** An assessment without its per-service reports, for tests about the phase. */
function withoutServices({ services: _, ...rest }: Assessment): Omit<Assessment, "services"> {
  return rest;
}

/** The assessment of a deployment that runs as it should. */
function running(name: string, generation = 1) {
  return { ref: ref(name), generation, phase: "Running", error: null };
}

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
    "create fleet_pi-01_default_web_web",
    "start c1",
    "ensureImage localhost/cache:1",
    "create fleet_pi-01_default_web_cache",
    "start c2",
    "ensureImage localhost/api:1",
    "create fleet_pi-01_team-a_api_api",
    "start c3",
  ]);
  assert.deepEqual(result.assessments.map(withoutServices), [
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
    assert.deepEqual(result.assessments.map(withoutServices), [
      { ref: ref("web"), generation: 1, phase: "Running", error: null },
    ]);
  }
});

Deno.test("Reconciler.pass() reports a failing create as Failed, naming the step, and carries on with the rest", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.failCreate.set("localhost/broken:1", "image localhost/broken:1 not found");
  const lines: string[] = [];
  const log = createLogger({ timestamps: false, write: (line) => lines.push(line) });
  const desired = desiredOf(
    entry(ref("bad"), [service("bad", "localhost/broken:1")], 2),
    entry(ref("web"), [service("web", "localhost/web:1")]),
  );
  const clock = new FakeClock();
  const r = reconciler(runtime, log, { clock });
  const result = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(result.assessments.map(withoutServices), [
    {
      ref: ref("bad"),
      generation: 2,
      phase: "Failed",
      error: "create failed: image localhost/broken:1 not found; attempt 1, next in 10 s",
    },
    { ref: ref("web"), generation: 1, phase: "Pending", error: null },
  ]);
  assert.equal(result.wakeAt, 10_000, "the loop wakes when the backoff ends");
  assert.deepEqual(runtime.containers.map((c) => c.name), ["fleet_pi-01_default_web_web"]);
  assert.ok(
    lines.some((l) =>
      l.startsWith("ERROR Could not create container fleet_pi-01_default_bad_bad") &&
      l.includes("create failed: image localhost/broken:1 not found")
    ),
    lines.join("\n"),
  );

  // The next passes leave it alone until its backoff ends; then it is tried again.
  runtime.take();
  await clock.advance(9_999);
  const waiting = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(runtime.take(), []);
  assert.deepEqual(waiting.assessments.map((a) => [a.ref.name, a.phase]), [
    ["bad", "Failed"],
    ["web", "Running"],
  ]);
  await clock.advance(1);
  const again = await r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
  assert.deepEqual(runtime.take(), [
    "ensureImage localhost/broken:1",
    "create fleet_pi-01_default_bad_bad",
  ]);
  assert.equal(
    again.assessments[0]?.error,
    "create failed: image localhost/broken:1 not found; attempt 2, next in 20 s",
  );
});

Deno.test("Reconciler.pass() tries a failing deployment again at once when a person retried its rollout (a new retry value)", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.failCreate.set("localhost/broken:1", "image localhost/broken:1 not found");
  const bad = entry(ref("bad"), [service("bad", "localhost/broken:1")], 2);
  const clock = new FakeClock();
  const r = reconciler(runtime, silentLogger, { clock });
  await r.pass({ deviceId: DEVICE, desired: desiredOf(bad), retained: noneRetained });
  runtime.take();
  await clock.advance(1_000);
  // Within the backoff: the same value waits, a retried one is tried now.
  await r.pass({ deviceId: DEVICE, desired: desiredOf(bad), retained: noneRetained });
  assert.deepEqual(runtime.take(), []);
  const retried = await r.pass({
    deviceId: DEVICE,
    desired: desiredOf({ ...bad, retry: 1 }),
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), [
    "ensureImage localhost/broken:1",
    "create fleet_pi-01_default_bad_bad",
  ]);
  assert.match(retried.assessments[0]?.error ?? "", /attempt 1, next in 10 s$/, "a new streak");
  await clock.advance(1_000);
  await r.pass({
    deviceId: DEVICE,
    desired: desiredOf({ ...bad, retry: 1 }),
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), [], "the retry is taken once");
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
  assert.deepEqual(result.assessments.map(withoutServices), [
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
    // The replacement's image first: the running container stays if it cannot be pulled.
    "ensureImage localhost/web:2",
    `remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`,
    "ensureImage localhost/new:1",
    "create fleet_pi-01_default_new_new",
    "start c3",
    "ensureImage localhost/web:2",
    "create fleet_pi-01_default_web_web",
    "start c4",
  ]);
  assert.equal(result.actions, 4);
  const web = runtime.containers.find((c) => c.name === "fleet_pi-01_default_web_web");
  assert.equal(web?.labels[ContainerLabels.generation], "2");
});

Deno.test("Reconciler.pass() leaves a running container running when its replacement's image cannot be pulled", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  runtime.add(ref("web"), service("web", "localhost/web:1"));
  runtime.failPull.set("localhost/web:bad", "manifest unknown");
  const lines: string[] = [];
  const log = createLogger({ timestamps: false, write: (line) => lines.push(line) });
  const result = await reconciler(runtime, log).pass({
    deviceId: DEVICE,
    desired: desiredOf(entry(ref("web"), [service("web", "localhost/web:bad")], 2)),
    retained: noneRetained,
  });
  assert.deepEqual(runtime.take(), ["ensureImage localhost/web:bad"]);
  assert.deepEqual(runtime.containers.map((c) => [c.name, c.labels[ContainerLabels.generation]]), [
    ["fleet_pi-01_default_web_web", "1"],
  ]);
  assert.equal(result.assessments[0]?.phase, "Failed");
  assert.match(result.assessments[0]?.error ?? "", /image pull failed: manifest unknown/);
  assert.ok(
    lines.some((l) =>
      l.startsWith("ERROR Could not replace container fleet_pi-01_default_web_web: image pull")
    ),
    lines.join("\n"),
  );
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
    "ensureImage localhost/web:2",
    `remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`,
    "ensureImage localhost/api:1",
    "create fleet_pi-01_default_api_api",
    "start c2",
  ]);
  assert.deepEqual(result.assessments.map(withoutServices), [
    {
      ref: ref("web"),
      generation: 2,
      phase: "Failed",
      error:
        "remove failed: cannot stop fleet_pi-01_default_web_web: device busy; attempt 1, next in 10 s",
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

/** Runs a pass of `r` over `desired`. */
function passOf(r: Reconciler, desired: Map<string, DesiredEntry>) {
  return r.pass({ deviceId: DEVICE, desired, retained: noneRetained });
}

Deno.test("Reconciler backs a failing pull off per deployment: over 10 minutes of passes every second, pulls follow the schedule", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  runtime.failPull.set("localhost/bad:1", "manifest unknown");
  const desired = desiredOf(
    entry(ref("bad"), [service("bad", "localhost/bad:1")]),
    entry(ref("web"), [service("web", "localhost/web:1")]),
  );
  const r = reconciler(runtime, silentLogger, { clock });
  const pulls: number[] = [];
  const webCreates: number[] = [];
  let last;
  for (let t = 0; t <= 600_000; t += 1000) {
    // Another deployment keeps the agent busy: its container is removed by hand now and then.
    if (t % 60_000 === 30_000) runtime.containers.splice(0);
    last = await passOf(r, desired);
    for (const call of runtime.take()) {
      if (call === "ensureImage localhost/bad:1") pulls.push(t / 1000);
      if (call === "create fleet_pi-01_default_web_web") webCreates.push(t / 1000);
    }
    await clock.advance(1000);
  }
  assert.deepEqual(pulls, [0, 10, 30, 70, 150, 310], "10 s doubling, capped at 5 min");
  assert.equal(webCreates.length, 11, "the other deployment came back each time at once");
  assert.equal(
    last?.assessments[0]?.error,
    "image pull failed: manifest unknown; attempt 6, next in 300 s",
  );
  assert.equal(last?.wakeAt, 610_000);
});

Deno.test("Reconciler tries a failing deployment at once for a new generation, and forgets the streak after a success", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  runtime.failPull.set("localhost/web:1", "manifest unknown");
  const r = reconciler(runtime, silentLogger, { clock });
  const v1 = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")], 1));
  await passOf(r, v1);
  await clock.advance(10_000);
  const second = await passOf(r, v1);
  assert.match(second.assessments[0]?.error ?? "", /attempt 2, next in 20 s$/);

  runtime.take();
  const v2 = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")], 2));
  const fresh = await passOf(r, v2);
  assert.deepEqual(runtime.take(), ["ensureImage localhost/web:1"], "no wait for generation 2");
  assert.match(fresh.assessments[0]?.error ?? "", /attempt 1, next in 10 s$/);

  // The registry answers again: the retry succeeds and the deployment runs.
  runtime.failPull.clear();
  await clock.advance(10_000);
  const retried = await passOf(r, v2);
  assert.equal(retried.assessments[0]?.phase, "Failed", "not Running before it is up");
  const up = await passOf(r, v2);
  assert.deepEqual(withoutServices(up.assessments[0]!), running("web", 2));
  // A later failure starts a new streak.
  runtime.containers.splice(0);
  runtime.failPull.set("localhost/web:1", "manifest unknown");
  const again = await passOf(r, v2);
  assert.match(again.assessments[0]?.error ?? "", /attempt 1, next in 10 s$/);
});

Deno.test("Reconciler reports Running only once every container has been up min_ready, and wakes for it", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const r = reconciler(runtime, silentLogger, { clock, minReadyMs: 5000 });
  const desired = desiredOf(
    entry(ref("web"), [service("web", "localhost/web:1"), service("db", "localhost/db:1")]),
  );
  assert.equal((await passOf(r, desired)).assessments[0]?.phase, "Pending");
  await clock.advance(250);
  const up = await passOf(r, desired);
  assert.equal(up.assessments[0]?.phase, "Pending");
  assert.equal(up.wakeAt, 5000, "the loop wakes when min_ready is up, not at the next relist");

  // db is restarted by podman at 3 s: its run starts over.
  await clock.advance(2750);
  runtime.crash(runtime.containers[1]!.id, 1);
  await clock.advance(2000);
  const restarted = await passOf(r, desired);
  assert.equal(restarted.assessments[0]?.phase, "Pending");
  assert.equal(restarted.wakeAt, 8000);
  await clock.advance(3000);
  const ready = await passOf(r, desired);
  assert.deepEqual(withoutServices(ready.assessments[0]!), running("web", 1));
  assert.equal(ready.wakeAt, undefined);
});

Deno.test("Reconciler keeps a deployment Pending while podman does not show its published port", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const web = { ...service("web", "localhost/web:1"), ports: ["8080:80"] };
  runtime.add(ref("web"), web, 1, "running", clock.now() - 60_000);
  const r = reconciler(runtime, silentLogger, { clock, minReadyMs: 5000 });
  const desired = desiredOf(entry(ref("web"), [web]));
  assert.equal((await passOf(r, desired)).assessments[0]?.phase, "Running", "up for a minute");
  runtime.containers[0]!.ports = [];
  const missing = await passOf(r, desired);
  assert.equal(missing.assessments[0]?.phase, "Pending");
  assert.equal(missing.wakeAt, undefined);
});

Deno.test("Reconciler counts a job that finished under restartPolicy no as Running at once", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const job = { ...service("job", "localhost/job:1"), restartPolicy: "no" as const };
  const id = runtime.add(ref("job"), job);
  runtime.exit(id, 0);
  const r = reconciler(runtime, silentLogger, { clock, minReadyMs: 5000 });
  const result = await passOf(r, desiredOf(entry(ref("job"), [job])));
  assert.equal(result.assessments[0]?.phase, "Running");
});

Deno.test("Reconciler finds a container podman keeps restarting crash-looping: Failed with exit code, restarts and output, removed, created again after the backoff", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const r = reconciler(runtime, silentLogger, { clock, minReadyMs: 5000 });
  const desired = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")]));
  await passOf(r, desired);
  await clock.advance(250);
  await passOf(r, desired);
  runtime.take();

  const id = runtime.containers[0]!.id;
  await clock.advance(1000);
  runtime.crash(id, 1, "error: cannot open /data/db\n", 6);
  const looping = await passOf(r, desired);
  assert.deepEqual(withoutServices(looping.assessments[0]!), {
    ref: ref("web"),
    generation: 1,
    phase: "Failed",
    error: "service web is crash-looping: exited with code 1, restarted 6 times; last output: " +
      Array(6).fill("error: cannot open /data/db").join(" ") + "; attempt 1, next in 10 s",
  });
  assert.deepEqual(runtime.take(), [`remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`]);
  assert.equal(runtime.containers.length, 0, "removed: its restart policy cannot restart it");
  assert.equal(looping.wakeAt, 11_250);

  // Gone for the backoff: not created again, and the message does not change.
  await clock.advance(5000);
  const waiting = await passOf(r, desired);
  assert.deepEqual(runtime.take(), []);
  assert.equal(waiting.assessments[0]?.error, looping.assessments[0]?.error);

  await clock.advance(5000);
  await passOf(r, desired);
  assert.deepEqual(runtime.take(), [
    "ensureImage localhost/web:1",
    "create fleet_pi-01_default_web_web",
    "start c2",
  ]);
  // The new container crashes at once too: the next backoff is twice as long.
  await clock.advance(250);
  await passOf(r, desired);
  runtime.crash("c2", 1, "error: cannot open /data/db\n");
  await clock.advance(250);
  const again = await passOf(r, desired);
  assert.match(
    again.assessments[0]?.error ?? "",
    /^service web is crash-looping: exited with code 1, restarted 7 times; .*attempt 2, next in 20 s$/,
  );
});

Deno.test("Reconciler finds a container it recreates after each exit crash-looping after the fourth exit", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const r = reconciler(runtime, silentLogger, { clock, minReadyMs: 5000 });
  const desired = desiredOf(entry(ref("web"), [service("web", "localhost/web:1")]));
  await passOf(r, desired);
  const phases: (string | null)[] = [];
  for (let i = 0; i < 4; i++) {
    await clock.advance(1000);
    runtime.exit(runtime.containers[0]!.id, 2, "bad flag\n");
    const result = await passOf(r, desired);
    phases.push(`${result.assessments[0]?.phase}: ${result.assessments[0]?.error}`);
  }
  assert.deepEqual(phases, [
    "Pending: service web exited with code 2; restarting it",
    "Pending: service web exited with code 2; restarting it",
    "Pending: service web exited with code 2; restarting it",
    "Failed: service web is crash-looping: exited with code 2, restarted 4 times; " +
    "last output: bad flag; attempt 1, next in 10 s",
  ]);
  assert.deepEqual(runtime.take().slice(-1), [
    `remove fleet_pi-01_default_web_web timeout=${STOP_TIMEOUT}`,
  ]);
  assert.equal(runtime.containers.length, 0, "not created again before the backoff ends");
});

Deno.test("Reconciler.pass() removes the containers evictions() names before planning, and keeps a refused deployment's others", async () => {
  const runtime = new MemoryRuntime(DEVICE);
  const legacy = runtime.add(ref("legacy"), service("app", "localhost/legacy:1"));
  const kept = runtime.add(ref("kept"), service("app", "localhost/kept:1"));
  const refused = (name: string): DesiredEntry => ({
    ref: ref(name),
    generation: 2,
    error: "refused by this device's policy: ...",
  });
  const { logger, lines } = (() => {
    const lines: string[] = [];
    return {
      logger: createLogger({ level: "warn", timestamps: false, write: (l) => lines.push(l) }),
      lines,
    };
  })();
  const seen: string[][] = [];
  const result = await reconciler(runtime, logger).pass({
    deviceId: DEVICE,
    desired: desiredOf(refused("legacy"), refused("kept")),
    retained: noneRetained,
    evictions: (observed) => {
      seen.push(observed.map((c) => c.id));
      return Promise.resolve(new Map([[legacy, "it breaks this device's policy: ..."]]));
    },
  });
  assert.deepEqual(seen, [[legacy, kept]]);
  assert.deepEqual(runtime.take(), [
    `remove fleet_pi-01_default_legacy_app timeout=${STOP_TIMEOUT}`,
  ]);
  assert.deepEqual(runtime.containers.map((c) => c.id), [kept]);
  assert.equal(result.actions, 1);
  assert.match(
    lines.join("\n"),
    /Removing container fleet_pi-01_default_legacy_app: it breaks this device's policy/,
  );
  assert.deepEqual(result.assessments.map((a) => a.phase), ["Failed", "Failed"]);
});

/** `web` with a healthcheck every 10 s, unhealthy after 2 failures. */
function checkedWeb(): PodmanService {
  return PodmanService.parse({
    name: "web",
    image: "localhost/web:1",
    healthcheck: { command: ["wget", "-q", "http://127.0.0.1/"], interval: "10s", retries: 2 },
  });
}

/** A reconciler whose healthcheck runs are counted; minReadyMs 5 s unless the deployment says. */
function checkingReconciler(runtime: MemoryRuntime, clock: FakeClock) {
  const runs = { finished: 0 };
  const r = new Reconciler({
    runtime,
    log: silentLogger,
    stopTimeoutSeconds: STOP_TIMEOUT,
    minReadyMs: 5000,
    clock,
    random: () => 0,
    onHealthcheckRun: () => runs.finished++,
  });
  return { r, runs };
}

Deno.test("Reconciler runs a due healthcheck itself and reports Running once healthy for the deployment's minReadySeconds", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const { r, runs } = checkingReconciler(runtime, clock);
  const desired = desiredOf({
    ...entry(ref("web"), [checkedWeb()]),
    revision: "5e0c2a7f9b1d4e36",
    minReadyMs: 20_000, // the deployment's minReadySeconds wins over the agent's 5 s
  });
  await passOf(r, desired); // created and started
  const up = await passOf(r, desired);
  assert.deepEqual(up.assessments[0], {
    ref: ref("web"),
    generation: 1,
    phase: "Pending",
    error: null,
    revision: "5e0c2a7f9b1d4e36",
    services: [{ name: "web", health: "starting", restarts: 0 }],
  });
  assert.equal(up.wakeAt, 11_000, "the loop wakes when the first check is due: interval + grace");
  assert.deepEqual(runtime.take().filter((c) => c.startsWith("healthcheck")), []);

  await clock.advance(11_000);
  await passOf(r, desired); // runs the check, in the background
  assert.deepEqual(runtime.take(), ["healthcheck c1"]);
  await Promise.resolve();
  assert.equal(runs.finished, 1, "the agent is told, so a pass reads the verdict at once");
  const healthy = await passOf(r, desired);
  assert.equal(healthy.assessments[0]?.phase, "Pending", "healthy, not yet for minReadySeconds");
  assert.deepEqual(healthy.assessments[0]?.services, [
    { name: "web", health: "healthy", restarts: 0 },
  ]);
  assert.equal(healthy.wakeAt, 22_000, "the next check: 11 s + 10 s + grace");

  await clock.advance(11_000);
  await passOf(r, desired); // the second check
  await Promise.resolve();
  const still = await passOf(r, desired);
  assert.equal(still.assessments[0]?.phase, "Pending");
  assert.equal(
    still.wakeAt,
    31_000,
    "ready 20 s after it was first healthy, before the next check",
  );
  await clock.advance(9_000);
  const ready = await passOf(r, desired);
  assert.equal(ready.assessments[0]?.phase, "Running", "healthy for 20 s");
  assert.deepEqual(runtime.take().filter((c) => c.startsWith("healthcheck")), ["healthcheck c1"]);
});

Deno.test("Reconciler reports a service unhealthy past its retries Failed with the check's output, and Running when it recovers", async () => {
  const clock = new FakeClock();
  const runtime = new MemoryRuntime(DEVICE, clock);
  const { r } = checkingReconciler(runtime, clock);
  const desired = desiredOf(entry(ref("web"), [checkedWeb()]));
  await passOf(r, desired);
  const name = runtime.containers[0]!.name;
  runtime.failHealthcheck.set(name, "wget: can't connect to remote host: Connection refused");
  const phases: string[] = [];
  for (let i = 0; i < 3; i++) {
    await clock.advance(11_000);
    await passOf(r, desired);
    await Promise.resolve();
    const result = await passOf(r, desired);
    phases.push(`${result.assessments[0]?.phase} ${result.assessments[0]?.services?.[0]?.health}`);
  }
  assert.deepEqual(phases, ["Pending starting", "Failed unhealthy", "Failed unhealthy"]);
  const failed = await passOf(r, desired);
  assert.equal(
    failed.assessments[0]?.error,
    "service web is unhealthy: healthcheck failed 3 times in a row: wget: can't connect to " +
      "remote host: Connection refused",
  );
  assert.equal(runtime.containers.length, 1, "an unhealthy container is reported, not replaced");

  runtime.failHealthcheck.delete(name);
  await clock.advance(11_000);
  await passOf(r, desired);
  await Promise.resolve();
  assert.equal((await passOf(r, desired)).assessments[0]?.phase, "Pending", "healthy again");
  await clock.advance(5_000);
  assert.equal((await passOf(r, desired)).assessments[0]?.phase, "Running");
});
