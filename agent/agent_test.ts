/**
 * The agent's cadences, grace period, failure backoff and readiness on a fake clock: a real
 * nats-server, the in-memory container runtime (or real podman, for what only podman can
 * show: its errors, its restart policy, its logs), and time that moves only when the test
 * says so.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  Buckets,
  ContainerLabels,
  DeploymentState,
  DeviceInfo,
  Heartbeat,
  keys,
  parseJsonWith,
  revisionHash,
  rolloutReportOf,
} from "../core/mod.ts";
import { connectNats, ensureBucket, noCredentials } from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { type NatsServer, startNatsServer } from "../sandbox/nats_server.ts";
import { waitFor } from "../adapters/timers.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { MemoryRuntime } from "../testing/memory_runtime.ts";
import { keepDeviceConsumers, runTestAgent } from "../testing/agents.ts";
import { systemClock } from "../adapters/clock.ts";
import type { Agent, AgentOptions } from "./agent.ts";
import { HEAP_CHECK_MS, MEMORY_SETTLE_MS } from "./memory_keeper.ts";
import { eventually } from "../testing/eventually.ts";
import type { ContainerRuntime } from "./runtime.ts";
import { PodmanRuntime } from "./podman_runtime.ts";

const DEVICE = "pi-01";
const T0 = Date.parse("2026-02-01T06:00:00Z");
const INTERVALS = {
  heartbeat_seconds: 10,
  relist_seconds: 30,
  republish_seconds: 300,
  orphan_grace_seconds: 60,
  stop_timeout_seconds: 5,
  min_ready_seconds: 5,
};

/** A desired-state value as the operator writes it; `service` adds to its one service. */
function desired(name: string, service: Record<string, unknown> = {}): string {
  return JSON.stringify({
    namespace: "default",
    name,
    generation: 1,
    score: {
      type: "PodmanV0",
      data: { services: [{ name, image: `localhost/${name}:1`, ...service }] },
    },
  });
}

const desiredKey = (name: string) => keys.desiredState(DEVICE, { namespace: "default", name });

/** A nats-server with the buckets the operator would have created, and an in-memory runtime. */
class Fixture implements AsyncDisposable {
  readonly runtime = new MemoryRuntime(DEVICE);
  /** Monotonic time of every reconcile pass (each lists the containers once). */
  readonly passes: number[] = [];

  private constructor(
    readonly ns: NatsServer,
    readonly nc: NatsConnection,
    readonly desired: KV,
    readonly info: KV,
    readonly heartbeats: KV,
    readonly stateDir: string,
    readonly consumers: { sync(): Promise<void> } & AsyncDisposable,
  ) {}

  static async start(): Promise<Fixture> {
    const ns = await startNatsServer();
    const nc = await connectNats({
      servers: [ns.url],
      credentials: noCredentials(),
      name: "agent-test",
      logger: silentLogger,
    });
    const bucket = (name: string) => ensureBucket(nc, name, { replicas: 1, history: 1 });
    await bucket(Buckets.deviceState);
    const desired = await bucket(Buckets.desiredState);
    return new Fixture(
      ns,
      nc,
      desired,
      await bucket(Buckets.deviceInfo),
      await bucket(Buckets.deviceHeartbeat),
      await Deno.makeTempDir({ prefix: "fleet-agent-test-" }),
      await keepDeviceConsumers(nc, [DEVICE]),
    );
  }

  /**
   * Runs an agent on `clock` until the returned stop() is called; `config` adds to its config.
   * The backoff has no jitter.
   */
  run(
    clock: FakeClock,
    config: Record<string, unknown> = {},
    runtime: ContainerRuntime = this.runtime,
    memory?: Pick<AgentOptions, "heap" | "code">,
  ) {
    this.runtime.clock = clock;
    const listManaged = runtime.listManaged.bind(runtime);
    runtime.listManaged = (deviceId) => {
      this.passes.push(clock.monotonic());
      return listManaged(deviceId);
    };
    const { agent, lines, stop } = runTestAgent({
      deviceId: DEVICE,
      stateDir: this.stateDir,
      natsUrl: this.ns.url,
      runtime,
      clock,
      config: { intervals: INTERVALS, ...config },
      ...(memory ? { memory } : {}),
    });
    return {
      /** Resolves once the desired state was read from NATS and acted on. */
      lines,
      agent,
      ready: async () => {
        await eventually("the desired state read", () => lines.some((l) => l.includes("Read the")));
        await eventually("a pass after the read", () => agent.passes >= 2);
      },
      stop: async () => {
        await stop();
        runtime.listManaged = listManaged;
      },
    };
  }

  names(): string[] {
    return this.runtime.containers.map((c) => c.name).sort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.consumers[Symbol.asyncDispose]();
    await this.nc.close();
    await this.ns[Symbol.asyncDispose]();
    await Deno.remove(this.stateDir, { recursive: true });
  }
}

/** The last pass's time; the next one is due a relist later. */
function lastPass(f: Fixture): number {
  const at = f.passes.at(-1);
  assert.ok(at !== undefined, "a pass has run");
  return at;
}

Deno.test("Agent relists every relist_seconds: a container removed by hand comes back", async () => {
  await using f = await Fixture.start();
  await f.desired.put(desiredKey("web"), desired("web"));
  const clock = new FakeClock(T0);
  const run = f.run(clock);
  try {
    await run.ready();
    await eventually("web created", () => f.runtime.containers.length === 1);
    // Lets the quick pass that confirms an action and the one when web is ready run, so the
    // relist cadence holds from here.
    await clock.advance(INTERVALS.min_ready_seconds * 1000 + 1_000);
    f.runtime.containers.length = 0;
    f.runtime.take();

    const relistMs = INTERVALS.relist_seconds * 1000;
    await clock.advance(lastPass(f) + relistMs - 1 - clock.monotonic());
    assert.deepEqual(f.runtime.take(), [], "nothing happens before the relist is due");
    await clock.advance(1);
    await eventually("web back", () => f.runtime.containers.length === 1);
    assert.deepEqual(f.runtime.take(), [
      "ensureImage localhost/web:1",
      `create fleet_${DEVICE}_default_web_web`,
      `start ${f.runtime.containers[0]?.id}`,
    ]);
  } finally {
    await run.stop();
  }
});

Deno.test("Agent keeps the containers of a deployment gone from a complete read for the orphan grace period, whatever the wall clock does", async () => {
  await using f = await Fixture.start();
  await f.desired.put(desiredKey("web"), desired("web"));
  await f.desired.put(desiredKey("api"), desired("api"));
  const first = f.run(new FakeClock(T0));
  await first.ready();
  await eventually("both created", () => f.runtime.containers.length === 2);
  await first.stop(); // the disk cache now holds both

  // The bucket is wiped and rebuilt while the agent is away; only web comes back so far.
  await f.desired.destroy();
  const rebuilt = await ensureBucket(f.nc, Buckets.desiredState, { replicas: 1, history: 1 });
  await f.consumers.sync(); // the device's consumer went with the bucket
  await rebuilt.put(desiredKey("web"), desired("web"));
  f.runtime.take();

  const clock = new FakeClock(T0);
  const run = f.run(clock);
  try {
    await run.ready();
    const graceMs = INTERVALS.orphan_grace_seconds * 1000;
    // NTP steps the wall clock an hour forward: the grace period is timed on the monotonic one.
    clock.jump(3_600_000);
    await clock.advance(graceMs - 1);
    assert.ok(f.passes.filter((at) => at > 0).length >= 1, "relists ran within the grace");
    assert.deepEqual(f.names(), [
      `fleet_${DEVICE}_default_api_api`,
      `fleet_${DEVICE}_default_web_web`,
    ]);
    assert.deepEqual(f.runtime.take(), [], "nothing removed or recreated");

    await clock.advance(INTERVALS.relist_seconds * 1000);
    await eventually("api removed", () => f.runtime.containers.length === 1);
    assert.deepEqual(f.runtime.take(), [
      `remove fleet_${DEVICE}_default_api_api timeout=${INTERVALS.stop_timeout_seconds}`,
    ]);
    assert.deepEqual(f.names(), [`fleet_${DEVICE}_default_web_web`]);
  } finally {
    await run.stop();
  }
});

Deno.test("Agent heartbeats every heartbeat_seconds, stamped with its own clock", async () => {
  await using f = await Fixture.start();
  const clock = new FakeClock(T0);
  const run = f.run(clock);
  const beat = async () => {
    const entry = await f.heartbeats.get(keys.heartbeat(DEVICE));
    return entry ? parseJsonWith(Heartbeat, entry.string(), "heartbeat").at : undefined;
  };
  const beatAt = (at: number) =>
    waitFor(`a heartbeat at ${at}`, async () => await beat() === at || undefined, 10_000, 20);
  try {
    await run.ready();
    // One heartbeat as soon as NATS answers, then one every heartbeat_seconds of the clock.
    await beatAt(T0);
    const heartbeatMs = INTERVALS.heartbeat_seconds * 1000;
    await clock.advance(heartbeatMs - 1);
    assert.equal(await beat(), T0, "none before the interval is up");
    await clock.advance(1);
    await beatAt(T0 + heartbeatMs);
    await clock.advance(heartbeatMs);
    await beatAt(T0 + 2 * heartbeatMs);
  } finally {
    await run.stop();
  }
});

Deno.test("Agent gives back the heap and code pages its start-up needed MEMORY_SETTLE_MS after it started, then only after growth", async () => {
  await using f = await Fixture.start();
  const clock = new FakeClock(T0);
  let releases = 0;
  let codeReleases = 0;
  const run = f.run(clock, {}, f.runtime, {
    heap: {
      total: () => 1,
      release: () => {
        releases++;
        return { heapBefore: 2, heapAfter: 1 };
      },
    },
    code: { release: () => (codeReleases++, 20 * 1048576) },
  });
  try {
    await run.ready();
    await clock.advance(MEMORY_SETTLE_MS - 1);
    assert.equal(releases + codeReleases, 0, "not before start-up has settled");
    await clock.advance(1);
    assert.deepEqual([releases, codeReleases], [1, 1]);
    await clock.advance(10 * HEAP_CHECK_MS);
    assert.deepEqual([releases, codeReleases], [1, 1], "a heap that did not grow is left alone");
  } finally {
    await run.stop();
  }
});

Deno.test("Agent republishes its DeviceInfo every republish_seconds, so a lost entry comes back", async () => {
  await using f = await Fixture.start();
  const clock = new FakeClock(T0);
  const run = f.run(clock);
  const info = async () => {
    const entry = await f.info.get(keys.deviceInfo(DEVICE));
    return entry?.operation === "PUT"
      ? parseJsonWith(DeviceInfo, entry.string(), "device info")
      : undefined;
  };
  try {
    await run.ready();
    const published = await waitFor("DeviceInfo published", info, 10_000, 20);
    assert.equal(published.updatedAt, new Date(T0).toISOString());

    // The entry is lost (a bucket rolled back): heartbeats alone do not bring it back.
    await f.info.delete(keys.deviceInfo(DEVICE));
    const republishMs = INTERVALS.republish_seconds * 1000;
    await clock.advance(republishMs - 1);
    assert.equal(await info(), undefined);
    await clock.advance(1);
    const again = await waitFor("DeviceInfo republished", info, 10_000, 20);
    assert.equal(again.updatedAt, new Date(T0 + republishMs).toISOString());
  } finally {
    await run.stop();
  }
});

Deno.test("Agent whose config holds a free-text label value (an earlier version's) starts, runs its containers, warns and reports the label as not selectable", async () => {
  await using f = await Fixture.start();
  await f.desired.put(desiredKey("web"), desired("web"));
  const run = f.run(new FakeClock(T0), {
    labels: { site: "Building 7 / Room 3", tier: "edge" },
    description: "Gateway by the loading dock",
    annotations: { owner: "Facilities, ext. 4411" },
  });
  try {
    await run.ready();
    assert.deepEqual(f.names(), [`fleet_${DEVICE}_default_web_web`]);
    const warning = run.lines.find((l) => l.includes("cannot be selected"));
    assert.ok(warning, `a warning about the label: ${run.lines.join("\n")}`);
    assert.match(warning, /Label site="Building 7 \/ Room 3" in \/etc\/fleet-agent\/config\.toml/);
    assert.match(warning, /site = "building-7-room-3"/);
    const info = await waitFor(
      "DeviceInfo published",
      async () => {
        const entry = await f.info.get(keys.deviceInfo(DEVICE));
        return entry?.operation === "PUT"
          ? parseJsonWith(DeviceInfo, entry.string(), "device info")
          : undefined;
      },
      10_000,
      20,
    );
    assert.deepEqual(info.labels, { "fleet.nationtech.io/device-id": DEVICE, tier: "edge" });
    assert.deepEqual(info.unselectableLabels, { site: "Building 7 / Room 3" });
    assert.equal(info.description, "Gateway by the loading dock");
    assert.deepEqual(info.annotations, { owner: "Facilities, ext. 4411" });
  } finally {
    await run.stop();
  }
});

/** The lastError the agent reports for deployment `name` once it satisfies `match`. */
function lastErrorOf(agent: Agent, name: string, match: RegExp): Promise<string> {
  return eventually(`the state of ${name} to match ${match}`, () => {
    const error = agent.states().get(`default.${name}`)?.lastError;
    return error && match.test(error) ? error : undefined;
  }, 60_000);
}

Deno.test("Agent pulls a failing image only on its backoff schedule: six pulls in ten minutes, one state change each", async () => {
  await using f = await Fixture.start();
  f.runtime.failPull.set("localhost/bad:1", "manifest unknown");
  await f.desired.put(desiredKey("bad"), desired("bad"));
  await f.desired.put(desiredKey("web"), desired("web"));
  const clock = new FakeClock(T0);
  const pulls: number[] = [];
  const ensureImage = f.runtime.ensureImage.bind(f.runtime);
  f.runtime.ensureImage = (image) => {
    if (image === "localhost/bad:1") pulls.push(clock.monotonic());
    return ensureImage(image);
  };
  const run = f.run(clock);
  try {
    await run.ready();
    await eventually("the first pull", () => pulls.length === 1);
    for (let second = 1; second <= 600; second++) {
      // The other deployment keeps the agent busy: its container is removed by hand now and then.
      if (second % 45 === 0) f.runtime.containers.length = 0;
      await clock.advance(1000);
    }
    assert.deepEqual(pulls.map((at) => (at - pulls[0]!) / 1000), [0, 10, 30, 70, 150, 310]);
    const reported = run.lines.filter((l) => l.includes("Deployment default/bad failed"));
    assert.deepEqual(
      reported.map((l) => /attempt \d+, next in \d+ s/.exec(l)?.[0]),
      [
        "attempt 1, next in 10 s",
        "attempt 2, next in 20 s",
        "attempt 3, next in 40 s",
        "attempt 4, next in 80 s",
        "attempt 5, next in 160 s",
        "attempt 6, next in 300 s",
      ],
      "the state changes once per attempt, not with every pass",
    );
    assert.equal(
      run.agent.states().get("default.bad")?.lastError,
      "image pull failed: manifest unknown; attempt 6, next in 300 s",
    );
    assert.equal(run.agent.states().get("default.web")?.phase, "Running");
  } finally {
    await run.stop();
  }
});

Deno.test("Agent reports a deployment Running when min_ready_seconds is up, without waiting for the relist", async () => {
  await using f = await Fixture.start();
  await f.desired.put(desiredKey("web"), desired("web"));
  const clock = new FakeClock(T0);
  const run = f.run(clock);
  const phase = () => run.agent.states().get("default.web")?.phase;
  try {
    await run.ready();
    await eventually("web created", () => f.runtime.containers.length === 1);
    await clock.advance(250);
    assert.equal(phase(), "Pending", "running, but not for long enough");
    const minReadyMs = INTERVALS.min_ready_seconds * 1000;
    await clock.advance(minReadyMs - 251);
    assert.equal(phase(), "Pending");
    await clock.advance(1);
    await eventually("web Running", () => phase() === "Running");
    assert.ok(lastPass(f) < INTERVALS.relist_seconds * 1000, "no relist was needed");
  } finally {
    await run.stop();
  }
});

/** A deployment name no other run of these tests uses, as the podman storage is shared. */
function uniqueDeployment(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 6)}`;
}

/** Removes the containers an agent test left in podman. */
async function removeManaged(client: PodmanClient, deployment: string): Promise<void> {
  for (const c of await client.listContainers({ [ContainerLabels.deployment]: deployment })) {
    await client.removeContainer(c.id);
  }
}

Deno.test("Agent on podman: an image that cannot be pulled is tried again only when its backoff ends, and its status says why, which attempt and when next", async () => {
  await using f = await Fixture.start();
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  // A registry that never answers properly: each connection is counted and closed.
  const registry = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const accepting = (async () => {
    for await (const conn of registry) {
      connections++;
      conn.close();
    }
  })();
  const name = uniqueDeployment("unpullable");
  const image = `127.0.0.1:${registry.addr.port}/fleet/unpullable:1`;
  await f.desired.put(desiredKey(name), desired(name, { image }));
  const clock = new FakeClock(T0);
  const runtime = new PodmanRuntime(client);
  const pulls: number[] = [];
  const ensureImage = runtime.ensureImage.bind(runtime);
  runtime.ensureImage = (ref) => {
    pulls.push(clock.monotonic());
    return ensureImage(ref);
  };
  const run = f.run(clock, {}, runtime);
  try {
    const first = await lastErrorOf(run.agent, name, /attempt 1\b/);
    assert.match(first, /^image pull failed: .+; attempt 1, next in 10 s$/);
    assert.ok(first.includes(image), first);
    const seen = connections;
    assert.ok(seen > 0, "the registry saw the pull");

    await clock.advance(9_999);
    assert.equal(pulls.length, 1, "not tried again before the backoff ends");
    assert.equal(connections, seen);
    await clock.advance(1);
    const second = await lastErrorOf(run.agent, name, /attempt 2\b/);
    assert.match(second, /^image pull failed: .+; attempt 2, next in 20 s$/);
    assert.ok(connections > seen, "the registry saw the second pull");
    assert.deepEqual(pulls.map((at) => at - pulls[0]!), [0, 10_000]);
  } finally {
    await run.stop();
    registry.close();
    await accepting;
    await removeManaged(client, name);
  }
});

Deno.test("Agent on podman: a container that exits at once is found crash-looping, reported with exit code, restarts and output, removed and tried again after the backoff", async () => {
  await using f = await Fixture.start();
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, "agent-test");
  const name = uniqueDeployment("crashing");
  // The default restart policy (unless-stopped): podman restarts it as fast as it exits.
  await f.desired.put(
    desiredKey(name),
    desired(name, {
      image,
      command: ["/bin/sh", "-c"],
      args: ["echo starting; echo cannot open /data/db >&2; exit 3"],
    }),
  );
  const clock = new FakeClock(T0);
  const run = f.run(clock, {}, new PodmanRuntime(client));
  // Simulated time moves a second every 50 ms while real podman does its part.
  const within = (match: RegExp) =>
    waitFor(
      `the state of ${name} to match ${match}`,
      async () => {
        await clock.advance(1000);
        const error = run.agent.states().get(`default.${name}`)?.lastError;
        return error && match.test(error) ? error : undefined;
      },
      60_000,
      50,
    );
  try {
    const looping = await within(/crash-looping/);
    assert.match(
      looping,
      /^service crashing-\w+ is crash-looping: exited with code 3, restarted \d+ times; last output: .*cannot open \/data\/db; attempt 1, next in 10 s$/,
    );
    assert.equal(run.agent.states().get(`default.${name}`)?.phase, "Failed");
    assert.ok(
      !run.lines.some((l) => l.includes(`${name} is running`)),
      `never reported Running:\n${run.lines.join("\n")}`,
    );

    // Removed, so podman's restart policy cannot keep restarting it, until the backoff ends.
    assert.deepEqual(await client.listContainers({ [ContainerLabels.deployment]: name }), []);

    // When the backoff ends it is tried again, crashes again, and waits twice as long.
    const again = await within(/attempt 2\b/);
    assert.match(again, /crash-looping: exited with code 3, .*; attempt 2, next in 20 s$/);
  } finally {
    await run.stop();
    await removeManaged(client, name);
  }
});

Deno.test("Agent on podman: a passing healthcheck makes a deployment Running after its minReadySeconds; a failing one makes it Failed with the check's output", async () => {
  await using f = await Fixture.start();
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, "agent-test");
  const good = uniqueDeployment("healthy");
  const bad = uniqueDeployment("unhealthy");
  const withCheck = (name: string, script: string) => {
    const value = JSON.parse(desired(name, {
      image,
      healthcheck: { command: ["/bin/sh", "-c", script], interval: "1s", retries: 2 },
    }));
    return { ...value, minReadySeconds: 2 };
  };
  const goodValue = withCheck(good, "test -d /bin");
  await f.desired.put(desiredKey(good), JSON.stringify(goodValue));
  await f.desired.put(desiredKey(bad), JSON.stringify(withCheck(bad, "echo no page here; exit 1")));
  // No podman healthcheck timer here (no systemd): the agent runs the checks on the real clock.
  // Its own min_ready_seconds is a minute: the deployments' 2 s must win.
  const { agent, stop } = runTestAgent({
    deviceId: DEVICE,
    stateDir: f.stateDir,
    natsUrl: f.ns.url,
    runtime: new PodmanRuntime(client),
    clock: systemClock,
    config: { intervals: { ...INTERVALS, min_ready_seconds: 60 } },
  });
  const stateOf = (name: string) => agent.states().get(`default.${name}`);
  try {
    const running = await eventually(`${good} Running`, () => {
      const state = stateOf(good);
      return state?.phase === "Running" ? state : undefined;
    }, 30_000);
    assert.deepEqual(running.services, [{ name: good, health: "healthy", restarts: 0 }]);
    assert.equal(running.revision, revisionHash(goodValue.score));
    const [container] = await client.listContainers({ [ContainerLabels.deployment]: good });
    const health = await client.containerHealth(container!.id);
    assert.ok(
      Date.now() - health!.passingSince! >= 2000,
      "Running only once healthy for minReadySeconds",
    );

    const failed = await eventually(`${bad} Failed`, () => {
      const state = stateOf(bad);
      return state?.phase === "Failed" ? state : undefined;
    }, 30_000);
    assert.match(
      failed.lastError ?? "",
      new RegExp(
        `^service ${bad} is unhealthy: healthcheck failed [2-9] times in a row: no page here$`,
      ),
    );
    assert.deepEqual(failed.services, [{ name: bad, health: "unhealthy", restarts: 0 }]);

    // What the control plane reads, as the rollout will: the report in device-state.
    const states = await ensureBucket(f.nc, Buckets.deviceState, { replicas: 1, history: 1 });
    const reported = await eventually("the Running report in NATS", async () => {
      const entry = await states.get(
        keys.deviceState(DEVICE, { namespace: "default", name: good }),
      );
      const state = entry?.value.length
        ? parseJsonWith(DeploymentState, entry.value, "state")
        : undefined;
      return state?.phase === "Running" ? state : undefined;
    });
    assert.deepEqual(rolloutReportOf(reported, 1), {
      revision: revisionHash(goodValue.score),
      phase: "Succeeded",
      at: 1,
    });
  } finally {
    await stop();
    await removeManaged(client, good);
    await removeManaged(client, bad);
  }
});
