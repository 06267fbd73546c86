import assert from "node:assert/strict";
import {
  CRASH_LOOP_EXITS,
  CRASH_LOOP_WINDOW_MS,
  HEALTHCHECK_GRACE_MS,
  healthcheckDueAt,
  type HealthcheckResult,
  isCrashLooping,
  needsRestartCount,
  observeService,
  type ServiceHealth,
  type ServiceObservation,
} from "./service_health.ts";
import type { ObservedContainer } from "./planner.ts";
import { FakeClock } from "../testing/fake_clock.ts";

const WALL = Date.UTC(2026, 0, 1);
const MIN_READY = 5_000;

function container(fields: Partial<ObservedContainer> = {}): ObservedContainer {
  return {
    id: "c1",
    name: "fleet_dev_default_web_web",
    labels: {},
    state: "running",
    exitCode: 0,
    startedAt: WALL,
    ports: [],
    ...fields,
  };
}

function seen(
  c: ObservedContainer | undefined,
  fields: Partial<ServiceObservation> = {},
): ServiceObservation {
  return {
    hash: "h1",
    container: c,
    condition: c === undefined ? "missing" : c.state === "running" ? "running" : "exited",
    ports: [],
    ...fields,
  };
}

/** observeService() at monotonic `now`, by default `now` after WALL on the wall clock. */
function observe(
  previous: ServiceHealth | undefined,
  observation: ServiceObservation,
  now: number,
  wall = WALL + now,
) {
  return observeService(previous, observation, now, wall, MIN_READY);
}

/** Folds observations made at [monotonic, wall] times; returns the last verdict. */
function fold(
  steps: [ServiceObservation, number, number][],
  start?: ServiceHealth,
) {
  let health = start;
  let verdict;
  for (const [observation, now, wall] of steps) {
    verdict = observe(health, observation, now, wall);
    health = verdict.health;
  }
  return verdict!;
}

Deno.test("observeService() is ready once the same run has been up min_ready", () => {
  const first = observe(undefined, seen(container(), { restartCount: 0 }), 1000, WALL);
  assert.equal(first.readyAt, 6000);
  assert.equal(first.newExits, 0);
  const later = observe(first.health, seen(container()), 6000, WALL + 5000);
  assert.equal(later.readyAt, 6000, "the run is the same: it has been up since 1000");
  assert.equal(later.health.upSince, 1000);
});

Deno.test("observeService() credits a run podman started before the agent saw it (an agent restart)", () => {
  const verdict = observe(
    undefined,
    seen(container({ startedAt: WALL - 3_600_000 }), { restartCount: 0 }),
    500,
    WALL,
  );
  assert.ok(verdict.readyAt !== undefined && verdict.readyAt <= 500, "ready at once");
  // A start podman dates in the future (the wall clock stepped back) earns no credit.
  const ahead = observe(undefined, seen(container({ startedAt: WALL + 60_000 })), 500, WALL);
  assert.equal(ahead.readyAt, 500 + MIN_READY);
});

Deno.test("observeService() counts podman's restarts between two passes and starts the run afresh", () => {
  const first = observe(undefined, seen(container(), { restartCount: 2 }), 0);
  const restarted = observe(
    first.health,
    seen(container({ startedAt: WALL + 3000 }), { restartCount: 9 }),
    4000,
  );
  assert.equal(restarted.newExits, 7);
  assert.equal(restarted.health.restarts, 7);
  assert.equal(restarted.health.upSince, 3000);
  assert.equal(restarted.readyAt, 8000);
  // Without a count (it could not be read), a new start is one restart.
  const uncounted = observe(restarted.health, seen(container({ startedAt: WALL + 5000 })), 6000);
  assert.equal(uncounted.newExits, 1);
});

Deno.test("observeService() counts a container found exited against its policy once", () => {
  const exited = container({ state: "exited", exitCode: 1 });
  const verdict = fold([
    [seen(container(), { restartCount: 0 }), 0, WALL],
    [seen(exited), 1000, WALL + 1000],
  ]);
  assert.equal(verdict.newExits, 1);
  assert.equal(verdict.readyAt, undefined);
  assert.equal(verdict.health.upSince, undefined);
  const again = observe(verdict.health, seen(exited), 2000);
  assert.equal(again.newExits, 0, "still the same exit");
  // podman restarts it after all: that exit was counted already.
  const back = observe(
    again.health,
    seen(container({ startedAt: WALL + 2500 }), { restartCount: 1 }),
    3000,
  );
  assert.equal(back.newExits, 0);
  assert.equal(back.health.restarts, 1);
  // The agent recreates it: the new container's exit is a new one.
  const recreated = fold([
    [seen(container({ id: "c2", startedAt: WALL + 4000 }), { restartCount: 0 }), 4000, WALL + 4000],
    [
      seen(container({ id: "c2", state: "exited", exitCode: 1, startedAt: WALL + 4000 })),
      5000,
      WALL + 5000,
    ],
  ], back.health);
  assert.equal(recreated.newExits, 1);
  assert.equal(recreated.health.restarts, 2);
});

Deno.test("observeService() finds restarts within the second podman lists in the restart count", () => {
  const first = observe(undefined, seen(container(), { restartCount: 0 }), 0);
  // Same start second, but the count checked before calling it ready went up.
  const restarted = observe(first.health, seen(container(), { restartCount: 2 }), MIN_READY);
  assert.equal(restarted.newExits, 2);
  assert.equal(restarted.health.upSince, MIN_READY, "up at most since now");
  assert.equal(restarted.readyAt, 2 * MIN_READY);
  assert.equal(restarted.health.ready, false);
});

Deno.test("isCrashLooping() needs more than CRASH_LOOP_EXITS exits within the window", () => {
  assert.equal(CRASH_LOOP_EXITS, 3);
  let health = observe(undefined, seen(container(), { restartCount: 0 }), 0)
    .health;
  const restart = (n: number, now: number) => {
    health =
      observe(health, seen(container({ startedAt: WALL + now }), { restartCount: n }), now).health;
  };
  restart(3, 1000);
  assert.equal(isCrashLooping(health, 1000), false, "three exits are not yet a loop");
  restart(4, 2000);
  assert.equal(isCrashLooping(health, 2000), true);
  assert.equal(health.exits.length, CRASH_LOOP_EXITS + 1, "only the latest exits are kept");
  assert.equal(isCrashLooping(health, 1000 + CRASH_LOOP_WINDOW_MS), false, "they age out");

  const burst = observe(undefined, seen(container(), { restartCount: 0 }), 0);
  const many = observe(
    burst.health,
    seen(container({ startedAt: WALL + 250 }), { restartCount: 500 }),
    250,
  );
  assert.equal(many.health.restarts, 500);
  assert.deepEqual(many.health.exits, [250, 250, 250, 250]);
  assert.equal(isCrashLooping(many.health, 250), true);
});

Deno.test("observeService() is not ready while a port the service publishes is missing", () => {
  const port = { hostPort: 8080, containerPort: 80, protocol: "tcp" as const };
  const missing = observe(undefined, seen(container({ ports: [] }), { ports: [port] }), 0);
  assert.equal(missing.readyAt, undefined);
  const present = observe(
    undefined,
    seen(container({ ports: [{ ...port, range: 1 }] }), { ports: [port] }),
    0,
  );
  assert.equal(present.readyAt, MIN_READY);
  const inRange = observe(
    undefined,
    seen(container({ ports: [{ hostPort: 8079, containerPort: 79, protocol: "tcp", range: 3 }] }), {
      ports: [port],
    }),
    0,
  );
  assert.equal(inRange.readyAt, MIN_READY);
  const udp = observe(
    undefined,
    seen(container({ ports: [{ ...port, protocol: "udp" }] }), { ports: [port] }),
    0,
  );
  assert.equal(udp.readyAt, undefined);
});

Deno.test("observeService() counts a finished job as ready, and nothing else that is not running", () => {
  const done = container({ state: "exited", exitCode: 0 });
  assert.equal(
    observe(undefined, seen(done, { condition: "finished" }), 7, WALL).readyAt,
    7,
  );
  for (const condition of ["failed", "transient", "starting", "missing"] as const) {
    const c = condition === "missing" ? undefined : container({ state: "exited" });
    assert.equal(
      observe(undefined, seen(c, { condition }), 7, WALL).readyAt,
      undefined,
    );
  }
});

Deno.test("observeService() starts a new history for a new spec hash", () => {
  const old = fold([
    [seen(container(), { restartCount: 0 }), 0, WALL],
    [seen(container({ startedAt: WALL + 100 }), { restartCount: 5 }), 200, WALL + 200],
  ]);
  assert.equal(old.health.restarts, 5);
  const fresh = observe(
    old.health,
    seen(container({ id: "c2" }), { hash: "h2", restartCount: 0 }),
    300,
  );
  assert.equal(fresh.health.restarts, 0);
  assert.deepEqual(fresh.health.exits, []);
  assert.equal(fresh.health.hash, "h2");
});

Deno.test("needsRestartCount() asks for a new container or start, and once before a run is ready, never per tick", () => {
  const ask = (health: ServiceHealth | undefined, c: ObservedContainer | undefined, now = 0) =>
    needsRestartCount(health, c, now, MIN_READY);
  const first = observe(undefined, seen(container(), { restartCount: 0 }), 0);
  assert.equal(ask(undefined, container()), true);
  assert.equal(ask(first.health, container()), false);
  assert.equal(ask(first.health, container({ startedAt: WALL + 1000 })), true);
  assert.equal(ask(first.health, container({ id: "c2" })), true);
  assert.equal(ask(first.health, container({ startedAt: undefined })), false);
  assert.equal(ask(first.health, undefined), false);

  assert.equal(ask(first.health, container(), MIN_READY - 1), false);
  assert.equal(ask(first.health, container(), MIN_READY), true, "checked before it is ready");
  const ready = observe(first.health, seen(container(), { restartCount: 0 }), MIN_READY);
  assert.equal(ready.health.ready, true);
  assert.equal(ask(ready.health, container(), MIN_READY + 30_000), false, "not again once ready");
});

/** podman's healthcheck status, the latest check started at `at` (host epoch ms). */
function check(
  status: string,
  at: number | undefined,
  fields: Partial<HealthcheckResult> = {},
): HealthcheckResult {
  return {
    status,
    failingStreak: 0,
    lastCheckAt: at,
    passingSince: status === "healthy" ? at : undefined,
    lastOutput: "",
    ...fields,
  };
}

Deno.test("observeService() with a healthcheck is ready only once healthy for min_ready, not once up", async () => {
  const clock = new FakeClock();
  const c = container({ startedAt: clock.now() });
  const look = (previous: ServiceHealth | undefined, result: HealthcheckResult | null) =>
    observeService(
      previous,
      seen(c, { restartCount: 0, healthcheck: result }),
      clock.monotonic(),
      clock.now(),
      MIN_READY,
    );
  const starting = look(undefined, check("starting", undefined));
  assert.equal(starting.healthState, "starting");
  assert.equal(starting.readyAt, undefined, "up is not enough: no check has passed yet");
  await clock.advance(10_000);
  const stillStarting = look(starting.health, check("starting", undefined));
  assert.equal(stillStarting.readyAt, undefined, "up for longer than min_ready: still not ready");

  const healthyAt = clock.monotonic();
  const healthy = look(stillStarting.health, check("healthy", clock.now()));
  assert.equal(healthy.healthState, "healthy");
  assert.equal(healthy.readyAt, healthyAt + MIN_READY, "min_ready counts from the first pass");
  await clock.advance(MIN_READY);
  const ready = look(healthy.health, check("healthy", clock.now() - 1000));
  assert.equal(ready.readyAt, healthyAt + MIN_READY);
  assert.equal(ready.health.ready, true);
  assert.equal(ready.unhealthy, undefined);
});

Deno.test("observeService() starts min_ready again when a healthy service was unhealthy in between", async () => {
  const clock = new FakeClock();
  const c = container({ startedAt: clock.now() });
  const look = (previous: ServiceHealth | undefined, result: HealthcheckResult) =>
    observeService(
      previous,
      seen(c, { restartCount: 0, healthcheck: result }),
      clock.monotonic(),
      clock.now(),
      MIN_READY,
    );
  await clock.advance(30_000);
  const healthy = look(undefined, check("healthy", clock.now()));
  await clock.advance(30_000);
  const failing = look(
    healthy.health,
    check("unhealthy", clock.now(), { failingStreak: 3, lastOutput: "connection refused" }),
  );
  assert.equal(failing.healthState, "unhealthy");
  assert.equal(failing.readyAt, undefined);
  assert.equal(failing.unhealthy, "healthcheck failed 3 times in a row: connection refused");
  await clock.advance(30_000);
  const back = look(failing.health, check("healthy", clock.now()));
  assert.equal(back.readyAt, clock.monotonic() + MIN_READY, "min_ready again, from now");
});

Deno.test("observeService() credits the passing streak podman logs when the agent first sees a healthy run", async () => {
  const clock = new FakeClock();
  const c = container({ startedAt: clock.now() });
  await clock.advance(120_000); // the agent restarted; podman has checked for two minutes
  const verdict = observeService(
    undefined,
    seen(c, {
      restartCount: 0,
      healthcheck: check("healthy", clock.now(), {
        passingSince: clock.now() - 60_000,
      }),
    }),
    clock.monotonic(),
    clock.now(),
    MIN_READY,
  );
  assert.equal(verdict.health.ready, true, "healthy for a minute already: ready at once");
});

Deno.test("observeService() reports health none without a healthcheck and starting while not running", () => {
  assert.equal(observe(undefined, seen(container()), 0).healthState, "none");
  const exited = container({ state: "exited", exitCode: 1 });
  const verdict = observe(undefined, seen(exited, { healthcheck: null }), 0);
  assert.equal(verdict.healthState, "starting");
  assert.equal(verdict.unhealthy, undefined);
  // A check podman's inspect could not say anything about is not a pass.
  const unread = observe(undefined, seen(container(), { healthcheck: null }), 0);
  assert.equal(unread.healthState, "starting");
  assert.equal(unread.readyAt, undefined);
});

Deno.test("healthcheckDueAt() runs a check an interval after the start or the latest check, plus the grace", () => {
  const clock = new FakeClock();
  const started = clock.now();
  assert.equal(
    healthcheckDueAt(started, undefined, 10_000),
    started + 10_000 + HEALTHCHECK_GRACE_MS,
  );
  assert.equal(
    healthcheckDueAt(started, started + 25_000, 10_000),
    started + 35_000 + HEALTHCHECK_GRACE_MS,
  );
  // A check logged before a restart does not count for the new run.
  assert.equal(
    healthcheckDueAt(started + 60_000, started + 25_000, 10_000),
    started + 70_000 + HEALTHCHECK_GRACE_MS,
  );
});

Deno.test("observeService() does not take a verdict podman kept from before the container restarted", async () => {
  const clock = new FakeClock();
  await clock.advance(60_000);
  const restartedAt = clock.now();
  const c = container({ startedAt: restartedAt });
  for (const status of ["healthy", "unhealthy"]) {
    const verdict = observeService(
      undefined,
      seen(c, {
        restartCount: 1,
        healthcheck: check(status, restartedAt - 5000, { failingStreak: 2 }),
      }),
      clock.monotonic(),
      clock.now(),
      MIN_READY,
    );
    assert.equal(verdict.healthState, "starting", status);
    assert.equal(verdict.readyAt, undefined);
    assert.equal(verdict.unhealthy, undefined);
  }
});
