import assert from "node:assert/strict";
import {
  conflictMessage,
  type DeploymentRef,
  desiredStateOf,
  deviceLabels,
  type Labels,
  type LabelSelector,
  parsePort,
  type StoredDeployment,
} from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import {
  MemoryDesiredStateStore,
  RecordingSource,
  storedDeployment,
} from "../testing/operator_fakes.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import { zeroStats } from "./operator_stats.ts";
import { TargetingWriter } from "./targeting_writer.ts";

const WEB: DeploymentRef = { namespace: "default", name: "web" };

/**
 * A writer over an in-memory store whose first read is done, with `devices` at site=a and
 * deployment default/web (in an unbound namespace, allowed) unless `view` is given.
 */
function setup(devices: string[], view = new FleetView({ allowUnbound: true })) {
  const clock = new FakeClock();
  for (const id of devices) view.setDevice(id, { site: "a" });
  if (view.allowUnbound) {
    view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }));
  }
  const store = new MemoryDesiredStateStore(clock);
  const source = new RecordingSource(clock);
  const stats = zeroStats();
  const writer = new TargetingWriter({
    view,
    store,
    source,
    initialRead: new InitialRead([]),
    clock,
    log: silentLogger,
    stats,
    aggregateChanged: () => {},
  });
  return { clock, view, store, source, stats, writer };
}

/** The gaps between successive times. */
function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

Deno.test("TargetingWriter retries a write the store keeps denying at growing intervals, not in a hot loop", async () => {
  const { clock, store, stats, writer } = setup(["d1"]);
  store.deny = true;
  await writer.start();
  await clock.advance(120_000);

  const attempts = store.attempts.get("d1.default.web") ?? [];
  // 100 ms doubling to 30 s (less up to a fifth): 1 + 9 growing retries to reach the cap in
  // about a minute, then one every 24-30 s.
  assert.ok(attempts.length >= 10 && attempts.length <= 14, `${attempts.length} attempts`);
  const spacing = gaps(attempts);
  assert.ok(spacing[0]! >= 80, `first retry after ${spacing[0]} ms`);
  for (let i = 1; i < spacing.length; i++) {
    if (spacing[i - 1]! < 24_000) {
      assert.ok(spacing[i]! > spacing[i - 1]!, `gaps do not grow: ${spacing.join(", ")}`);
    } else {
      assert.ok(spacing[i]! >= 24_000 && spacing[i]! <= 30_010, `gap ${spacing[i]} ms`);
    }
  }
  assert.equal(stats.writeErrors, attempts.length);
  assert.equal(stats.desiredPuts, 0);
  assert.equal(writer.isPending(WEB), true, "not synced while a key is failing");
  await writer.stop();
  assert.equal(clock.pendingTimers, 0, "stopping cancels the pending retry");
});

Deno.test("TargetingWriter starts the backoff over after a write went through", async () => {
  const { clock, view, store, stats, writer } = setup(["d1"]);
  store.deny = true;
  await writer.start();
  await clock.advance(10_000);
  const failed = store.attempts.get("d1.default.web")!.length;
  assert.ok(failed >= 6, `${failed} attempts in 10 s`);

  store.deny = false;
  await clock.advance(30_000);
  assert.equal(stats.desiredPuts, 1);
  assert.equal(writer.isPending(WEB), false);

  // The next failure is retried after 100 ms again, not after the last delay.
  store.deny = true;
  view.deployments.set(WEB, storedDeployment("web", { matchLabels: { site: "a" } }, "web:2"));
  writer.mark(WEB);
  await clock.advance(1_000);
  const since = store.attempts.get("d1.default.web")!.slice(failed + 1);
  assert.ok(since.length >= 3, `${since.length} attempts in the second second`);
  assert.ok(gaps(since)[0]! <= 120, `first retry after ${gaps(since)[0]} ms`);
  await writer.stop();
});

Deno.test("TargetingWriter writes the other devices' keys while one is denied", async () => {
  const { clock, view, store, stats, writer } = setup(["d1", "d2", "d3"]);
  const denied = store.put.bind(store);
  store.put = (deviceId, ref, value) =>
    deviceId === "d2" ? Promise.reject(new Error("denied")) : denied(deviceId, ref, value);
  await writer.start();
  assert.deepEqual([...store.values.keys()].sort(), ["d1.default.web", "d3.default.web"]);
  assert.equal(stats.desiredPuts, 2);
  assert.equal(stats.writeErrors, 1);
  assert.equal(writer.isPending(WEB), true);

  // Once d2 left the targets, its failing key needs no retry and the deployment is synced.
  view.setDevice("d2", { site: "b" });
  writer.deviceLabelsChanged("d2", { site: "b" });
  await clock.advance(50);
  assert.equal(writer.isPending(WEB), false);
  await clock.advance(60_000);
  assert.equal(stats.writeErrors, 1, "no retry of a key no longer wanted");
  assert.equal(clock.pendingTimers, 0);
  await writer.stop();
});

// --- host-port conflicts ----------------------------------------------------------------

const API: DeploymentRef = { namespace: "default", name: "api" };
const DNS: DeploymentRef = { namespace: "default", name: "dns" };
const T1 = "2030-01-01T00:00:01Z";
const T2 = "2030-01-01T00:00:02Z";
const WEB_ON_8080 = "port 8080/tcp is already used by deployment default/web";

/** A deployment publishing `ports` from its one service, created at `createdAt`. */
function ported(
  name: string,
  selector: LabelSelector,
  ports: string[],
  createdAt: string,
  generation = 1,
): StoredDeployment {
  const d = storedDeployment(name, selector);
  const [service] = d.spec.score.data.services;
  return {
    ...d,
    metadata: { ...d.metadata, creationTimestamp: createdAt, generation },
    spec: { ...d.spec, score: { ...d.spec.score, data: { services: [{ ...service!, ports }] } } },
  };
}

/** A writer over `devices` (id → labels) and `deployments`, logging the order of writes. */
function conflictSetup(devices: Record<string, Labels>, deployments: StoredDeployment[]) {
  const clock = new FakeClock();
  const view = new FleetView({ allowUnbound: true });
  for (const [id, labels] of Object.entries(devices)) {
    view.setDevice(id, labels);
    view.lastSeen.set(id, clock.now());
  }
  for (const d of deployments) view.deployments.set(d.metadata, d);
  const store = new MemoryDesiredStateStore(clock);
  const writes: string[] = [];
  const put = store.put.bind(store);
  const del = store.delete.bind(store);
  store.put = (deviceId, ref, value) => {
    writes.push(`put ${deviceId}.${ref.name}@${value.generation}`);
    return put(deviceId, ref, value);
  };
  store.delete = (deviceId, ref) => {
    writes.push(`delete ${deviceId}.${ref.name}`);
    return del(deviceId, ref);
  };
  const stats = zeroStats();
  const writer = new TargetingWriter({
    view,
    store,
    source: new RecordingSource(clock),
    initialRead: new InitialRead([]),
    clock,
    log: silentLogger,
    stats,
    aggregateChanged: () => {},
  });
  /** Changes a device's labels as the device mirror does. */
  const relabel = (id: string, labels: Labels) => {
    view.setDevice(id, labels);
    writer.deviceLabelsChanged(id, labels);
  };
  /** Changes or deletes a deployment as the source does. */
  const source = (event: StoredDeployment | DeploymentRef) =>
    writer.onSource(
      "spec" in event ? { type: "upsert", deployment: event } : { type: "delete", ref: event },
    );
  const aggregate = (ref: DeploymentRef) => view.aggregate(ref, clock.now(), 3_600_000);
  const keys = () => [...store.values.keys()].sort();
  return { clock, view, store, writes, stats, writer, relabel, source, aggregate, keys };
}

const SITE_A: LabelSelector = { matchLabels: { site: "a" } };

Deno.test("TargetingWriter writes the first of two deployments on one host port and refuses the second, Failed on each device", async () => {
  const { clock, view, writer, stats, aggregate, keys } = conflictSetup(
    { d1: { site: "a" }, d2: { site: "a" } },
    [
      ported("api", SITE_A, ["8080:80"], T2),
      ported("web", SITE_A, ["8080:8080"], T1),
      // Another protocol: no conflict.
      ported("dns", SITE_A, ["8080:53/udp"], T2),
    ],
  );
  await writer.start();
  assert.deepEqual(keys(), [
    "d1.default.dns",
    "d1.default.web",
    "d2.default.dns",
    "d2.default.web",
  ]);
  const refusals = view.refusals.get(API);
  assert.deepEqual([...refusals?.keys() ?? []], ["d1", "d2"]);
  assert.equal(refusals?.get("d1")?.message, WEB_ON_8080);
  assert.deepEqual(refusals?.get("d1")?.by, WEB);
  assert.deepEqual(aggregate(API), {
    matchedDeviceCount: 2,
    succeeded: 0,
    failed: 2,
    pending: 0,
    unreachable: 0,
    lastError: { deviceId: "d1", message: WEB_ON_8080, at: new Date(clock.now()).toISOString() },
  });
  assert.equal(aggregate(WEB)?.failed, 0);
  assert.equal(view.refusals.has(DNS), false);

  // Steady state: syncing again writes nothing and keeps the refusal's time.
  const puts = stats.desiredPuts;
  const before = aggregate(API);
  await clock.advance(60_000);
  for (const ref of [API, WEB, DNS]) writer.mark(ref);
  await clock.advance(100);
  assert.equal(stats.desiredPuts, puts);
  assert.deepEqual(aggregate(API), before);
  await writer.stop();
});

Deno.test("TargetingWriter keeps the incumbent when an older deployment starts selecting its device", async () => {
  const { clock, view, store, writer, relabel, aggregate, keys } = conflictSetup(
    { d1: { site: "a" } },
    [
      ported("api", SITE_A, ["8080:80"], T2),
      ported("web", { matchLabels: { tier: "edge" } }, ["8080:80"], T1),
    ],
  );
  await writer.start();
  assert.deepEqual(keys(), ["d1.default.api"]);

  relabel("d1", { site: "a", tier: "edge" });
  await clock.advance(100);
  assert.deepEqual(keys(), ["d1.default.api"], "web is not written");
  assert.equal(store.attempts.get("d1.default.api")?.length, 1, "api is never rewritten");
  assert.equal(
    view.refusals.get(WEB)?.get("d1")?.message,
    "port 8080/tcp is already used by deployment default/api",
  );
  assert.equal(aggregate(WEB)?.failed, 1);
  await writer.stop();
});

Deno.test("TargetingWriter writes a refused deployment once the holder is deleted", async () => {
  const { clock, view, writes, writer, source, aggregate, keys } = conflictSetup(
    { d1: { site: "a" } },
    [ported("web", SITE_A, ["8080:80"], T1), ported("api", SITE_A, ["8080:80"], T2)],
  );
  await writer.start();
  assert.deepEqual(keys(), ["d1.default.web"]);

  source(WEB);
  await clock.advance(100);
  assert.deepEqual(keys(), ["d1.default.api"]);
  assert.deepEqual(writes, ["put d1.web@1", "delete d1.web", "put d1.api@1"]);
  assert.equal(view.refusals.has(API), false);
  assert.equal(aggregate(API)?.failed, 0);
  assert.equal(aggregate(API)?.pending, 1);
  await writer.stop();
});

Deno.test("TargetingWriter writes a refused deployment once the holder's new port reached the device", async () => {
  const { clock, view, writes, writer, source, keys } = conflictSetup(
    { d1: { site: "a" } },
    [ported("web", SITE_A, ["8080:80"], T1), ported("api", SITE_A, ["8080:80"], T2)],
  );
  await writer.start();
  source(ported("web", SITE_A, ["9090:80"], T1, 2));
  await clock.advance(100);
  assert.deepEqual(keys(), ["d1.default.api", "d1.default.web"]);
  // Not before web's old desired state, which holds the port, is replaced.
  assert.deepEqual(writes, ["put d1.web@1", "put d1.web@2", "put d1.api@1"]);
  assert.equal(view.refusals.has(API), false);
  await writer.stop();
});

Deno.test("TargetingWriter writes a refused deployment once the holder no longer selects the device", async () => {
  const { clock, writes, writer, relabel, keys } = conflictSetup(
    { d1: { site: "a", web: "yes" } },
    [
      ported("web", { matchLabels: { web: "yes" } }, ["8080:80"], T1),
      ported("api", SITE_A, ["8080:80"], T2),
    ],
  );
  await writer.start();
  relabel("d1", { site: "a" });
  await clock.advance(100);
  assert.deepEqual(keys(), ["d1.default.api"]);
  assert.deepEqual(writes, ["put d1.web@1", "delete d1.web", "put d1.api@1"]);
  await writer.stop();
});

Deno.test("TargetingWriter leaves a deployment that moves onto a taken port as it was on that device", async () => {
  const { clock, view, store, writes, writer, source, aggregate } = conflictSetup(
    { d1: { site: "a" } },
    [ported("web", SITE_A, ["9090:80"], T1), ported("api", SITE_A, ["8080:80"], T2)],
  );
  await writer.start();
  // web (the older) moves to api's port: api stays, web keeps generation 1 on d1.
  source(ported("web", SITE_A, ["8080:80"], T1, 2));
  await clock.advance(100);
  assert.deepEqual(writes.slice(2), []);
  assert.equal(store.values.get("d1.default.web")?.generation, 1);
  assert.equal(
    view.refusals.get(WEB)?.get("d1")?.message,
    conflictMessage(parsePort("8080:80"), API),
  );
  assert.equal(aggregate(WEB)?.failed, 1);
  await writer.stop();
});

Deno.test("TargetingWriter keeps the time of a refusal the stored status already reports (a restart)", async () => {
  const { view, writer, aggregate } = conflictSetup(
    { d1: { site: "a" } },
    [ported("web", SITE_A, ["8080:80"], T1), ported("api", SITE_A, ["8080:80"], T2)],
  );
  const lastError = { deviceId: "d1", message: WEB_ON_8080, at: "2029-12-31T23:00:00.000Z" };
  view.statuses.set(API, {
    ...API,
    observedGeneration: 1,
    aggregate: {
      matchedDeviceCount: 1,
      succeeded: 0,
      failed: 1,
      pending: 0,
      unreachable: 0,
      lastError,
    },
    updatedAt: lastError.at,
  });
  await writer.start();
  assert.deepEqual(aggregate(API), view.statuses.get(API)?.aggregate, "nothing to write");
  await writer.stop();
});

// --- a generation refused at the source -----------------------------------------------

/** `web` at site=a at `generation`, as the source delivers it. */
function webAt(generation: number, image = `localhost/web:${generation}`): StoredDeployment {
  const d = storedDeployment("web", { matchLabels: { site: "a" } }, image);
  return { ...d, metadata: { ...d.metadata, generation } };
}

Deno.test("TargetingWriter keeps a deployment's generation on its devices when the next one is refused at the source", async () => {
  const { clock, view, store, stats, writer } = setup(["d1", "d2"]);
  await writer.start();
  const before = new Map(store.values);
  assert.equal(before.size, 2);

  writer.onSource({ type: "refused", ref: WEB, generation: 2 });
  await clock.advance(1_000);
  assert.deepEqual(store.values, before);
  assert.equal(view.deployments.get(WEB)?.metadata.generation, 1);
  assert.equal(stats.desiredDeletes, 0);
  await writer.stop();
});

Deno.test("TargetingWriter holds what desired state has for a deployment refused at the source at start: nothing removed, nothing released", async () => {
  const clock = new FakeClock();
  const view = new FleetView({ allowUnbound: true });
  // As agents publish them: with their device-id label.
  for (const id of ["d1", "d2"]) view.setDevice(id, deviceLabels(id, { site: "a" }));
  const store = new MemoryDesiredStateStore(clock);
  // Generation 2 reached d1 before the operator restarted; the source now holds only a refused 3.
  const kept = desiredStateOf(webAt(2));
  await store.put("d1", WEB, kept);
  view.setDesired(WEB, "d1", kept);
  const source = new RecordingSource(clock);
  const stats = zeroStats();
  const initialRead = new InitialRead(["source"]);
  const writer = new TargetingWriter({
    view,
    store,
    source,
    initialRead,
    clock,
    log: silentLogger,
    stats,
    aggregateChanged: () => {},
  });
  writer.onSource({ type: "refused", ref: WEB, generation: 3 });
  initialRead.done("source");
  await writer.start();
  await clock.advance(1_000);
  assert.deepEqual([...store.values], [["d1.default.web", kept]]);
  assert.deepEqual(source.released, []);
  assert.deepEqual({ puts: stats.desiredPuts, deletes: stats.desiredDeletes }, {
    puts: 0,
    deletes: 0,
  });
  assert.equal(view.deployments.get(WEB)?.metadata.generation, 2);
  assert.deepEqual([...view.targets.get(WEB) ?? []], ["d1"]);

  // Fixed at the source: the accepted generation replaces what was held, on every target.
  writer.onSource({ type: "upsert", deployment: webAt(4) });
  await clock.advance(100);
  assert.deepEqual([...store.values.keys()].sort(), ["d1.default.web", "d2.default.web"]);
  assert.equal(store.values.get("d1.default.web")?.generation, 4);
  await writer.stop();
});

Deno.test("TargetingWriter still removes a deleted deployment's keys when a same-named one comes back refused", async () => {
  const { clock, store, source, writer } = setup(["d1"]);
  await writer.start();
  assert.equal(store.values.size, 1);

  writer.onSource({ type: "delete", ref: WEB });
  writer.onSource({ type: "refused", ref: WEB, generation: 1 });
  await clock.advance(1_000);
  assert.equal(store.values.size, 0, "the new one was never accepted: nothing of it is kept");
  assert.deepEqual(source.released, [WEB]);
  await writer.stop();
});

Deno.test("TargetingWriter keeps a namespace's deployments within its binding and retargets when it changes", async () => {
  const { clock, view, store, writer } = setup(["a1"], new FleetView());
  view.setDevice("b1", { site: "b" });
  const ref = { namespace: "team-a", name: "web" };
  const web = storedDeployment("web", { matchExpressions: [{ key: "site", operator: "Exists" }] });
  view.deployments.set(ref, { ...web, metadata: { ...web.metadata, namespace: "team-a" } });
  const keys = () => [...store.values.keys()].sort();
  await writer.start();
  assert.deepEqual(keys(), [], "an unbound namespace targets no device");
  assert.match(view.scopeProblems.get(ref) ?? "", /^namespace team-a is bound to no devices/);

  writer.bindingChanged("team-a", "site=a");
  await clock.advance(100);
  assert.deepEqual(keys(), ["a1.team-a.web"]);
  assert.equal(view.scopeProblems.get(ref), undefined);

  writer.bindingChanged("team-a", "site in (a,b)");
  await clock.advance(100);
  assert.deepEqual(keys(), ["a1.team-a.web", "b1.team-a.web"], "a joining device gains it");

  writer.bindingChanged("team-a", "site=b");
  await clock.advance(100);
  assert.deepEqual(keys(), ["b1.team-a.web"], "a leaving device loses it");

  // A device relabelled into the deployment's selector but outside the binding stays without.
  view.setDevice("a1", { site: "a", extra: "x" });
  writer.deviceLabelsChanged("a1", { site: "a", extra: "x" });
  await clock.advance(100);
  assert.deepEqual(keys(), ["b1.team-a.web"]);

  writer.bindingChanged("team-a", undefined);
  await clock.advance(100);
  assert.deepEqual(keys(), []);
  await writer.stop();
});

Deno.test("TargetingWriter keeps a deployment pending until its own turn in a sync, so its status waits", async () => {
  const { view, store, writer } = setup(["d1"]);
  const api = { namespace: "default", name: "api" };
  view.deployments.set(api, storedDeployment("api", { matchLabels: { site: "a" } }));
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const put = store.put.bind(store);
  store.put = async (deviceId, ref, value) => {
    if (ref.name === "web") await gate;
    return put(deviceId, ref, value);
  };
  const synced = writer.start();
  assert.equal(writer.isPending(api), true, "api's targets are not resolved yet");
  release();
  await synced;
  assert.equal(writer.isPending(api), false);
  assert.deepEqual([...store.values.keys()].sort(), ["d1.default.api", "d1.default.web"]);
  await writer.stop();
});
