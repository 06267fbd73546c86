import assert from "node:assert/strict";
import {
  aggregateEquals,
  type AggregateInput,
  computeAggregate,
  DEFAULT_STALE_AFTER_MS,
  UNKNOWN_GENERATION,
} from "./aggregate.ts";
import type { DeploymentState } from "./deployment_state.ts";
import type { Aggregate } from "./deployment_status.ts";

const NOW = 1_736_936_430_000;
const STALE = 90_000;

function state(
  deviceId: string,
  phase: DeploymentState["phase"],
  generation = 3,
  lastError: string | null = null,
  lastEventAt = "2025-01-15T10:00:00.000Z",
): DeploymentState {
  return {
    deviceId,
    namespace: "default",
    deployment: "web",
    generation,
    phase,
    lastError,
    lastEventAt,
  };
}

function input(
  matched: string[],
  states: DeploymentState[],
  seen: Record<string, number> = Object.fromEntries(matched.map((id) => [id, NOW])),
  generation = 3,
): AggregateInput {
  const byDevice = new Map(states.map((s) => [s.deviceId, s]));
  return {
    generation,
    matched,
    stateOf: (id) => byDevice.get(id),
    lastSeenOf: (id) => seen[id],
    now: NOW,
    staleAfterMs: STALE,
  };
}

Deno.test("DEFAULT_STALE_AFTER_MS is three missed 30 s heartbeats", () => {
  assert.equal(DEFAULT_STALE_AFTER_MS, 3 * 30_000);
});

Deno.test("computeAggregate() counts succeeded, failed and pending at the current generation", () => {
  const agg = computeAggregate(input(
    ["a", "b", "c", "d"],
    [state("a", "Running"), state("b", "Running"), state("c", "Failed"), state("d", "Pending")],
  ));
  assert.deepStrictEqual(agg, {
    matchedDeviceCount: 4,
    succeeded: 2,
    failed: 1,
    pending: 1,
    unreachable: 0,
    lastError: null,
  });
});

Deno.test("computeAggregate() counts reports of an older generation as pending", () => {
  const agg = computeAggregate(input(
    ["a", "b", "c"],
    [state("a", "Running", 2), state("b", "Failed", 1, "old failure"), state("c", "Running", 3)],
  ));
  assert.equal(agg.succeeded, 1);
  assert.equal(agg.failed, 0);
  assert.equal(agg.pending, 2);
  assert.equal(agg.lastError, null, "an old generation's error is not reported");
});

Deno.test("computeAggregate() counts a report of a newer generation as current", () => {
  const agg = computeAggregate(input(["a"], [state("a", "Running", 4)]));
  assert.equal(agg.succeeded, 1);
});

Deno.test("computeAggregate() counts devices that never reported as pending", () => {
  const agg = computeAggregate(input(["a", "b", "c"], [state("a", "Running")]));
  assert.equal(agg.matchedDeviceCount, 3);
  assert.equal(agg.succeeded, 1);
  assert.equal(agg.pending, 2);
});

Deno.test("computeAggregate() counts Failed at UNKNOWN_GENERATION against the current generation", () => {
  assert.equal(UNKNOWN_GENERATION, 0);
  const agg = computeAggregate(input(
    ["a", "b"],
    [
      state("a", "Failed", UNKNOWN_GENERATION, "invalid desired state"),
      state("b", "Running", UNKNOWN_GENERATION),
    ],
  ));
  assert.equal(agg.failed, 1);
  assert.equal(agg.succeeded, 0, "Running at generation 0 is not current");
  assert.equal(agg.pending, 1);
  assert.deepStrictEqual(agg.lastError, {
    deviceId: "a",
    message: "invalid desired state",
    at: "2025-01-15T10:00:00.000Z",
  });
});

Deno.test("computeAggregate() marks devices with a stale or missing heartbeat unreachable", () => {
  const agg = computeAggregate(input(
    ["fresh", "boundary", "stale", "never"],
    [state("fresh", "Running"), state("stale", "Running")],
    { fresh: NOW - 1_000, boundary: NOW - STALE, stale: NOW - STALE - 1 },
  ));
  assert.equal(agg.unreachable, 2, "stale and never; exactly staleAfterMs is still reachable");
  // Reachability does not change the phase counts.
  assert.equal(agg.succeeded, 2);
  assert.equal(agg.pending, 2);
});

Deno.test("computeAggregate() picks the newest lastError among matched devices", () => {
  const agg = computeAggregate(input(
    ["a", "b", "c"],
    [
      state("a", "Failed", 3, "oldest", "2025-01-15T10:00:00.000Z"),
      state("b", "Failed", 3, "newest", "2025-01-15T10:05:00.000Z"),
      state("c", "Failed", 3, "middle", "2025-01-15T10:02:00.000Z"),
    ],
  ));
  assert.deepStrictEqual(agg.lastError, {
    deviceId: "b",
    message: "newest",
    at: "2025-01-15T10:05:00.000Z",
  });
});

Deno.test("computeAggregate() counts a device the deployment was refused on as Failed, whatever it reported", () => {
  const refused = {
    message: "port 8080/tcp is already used by deployment default/api",
    at: "2025-01-15T10:00:00.000Z",
  };
  // "failed" reported a newer error, "old" an older generation and no heartbeat: the refusal
  // stands for all of them, and reachability is still counted.
  const agg = computeAggregate({
    ...input(
      ["silent", "running", "failed", "old", "ok"],
      [
        state("running", "Running"),
        state("failed", "Failed", 3, "newer error", "2025-01-15T10:00:30.000Z"),
        state("old", "Running", 2),
        state("ok", "Running"),
      ],
      { silent: NOW, running: NOW, failed: NOW, ok: NOW },
    ),
    refusalOf: (id) => id === "ok" ? undefined : refused,
  });
  assert.deepStrictEqual(agg, {
    matchedDeviceCount: 5,
    succeeded: 1,
    failed: 4,
    pending: 0,
    unreachable: 1,
    lastError: { deviceId: "silent", ...refused },
  });
});

Deno.test("computeAggregate() ignores devices that are not matched", () => {
  const agg = computeAggregate(input(
    ["a"],
    [
      state("a", "Running"),
      state("gone", "Failed", 3, "from an unmatched device", "2030-01-01T00:00:00.000Z"),
    ],
    { a: NOW, gone: 0 },
  ));
  assert.deepStrictEqual(agg, {
    matchedDeviceCount: 1,
    succeeded: 1,
    failed: 0,
    pending: 0,
    unreachable: 0,
    lastError: null,
  });
});

Deno.test("computeAggregate() of no matched devices is all zeros", () => {
  assert.deepStrictEqual(computeAggregate(input([], [])), {
    matchedDeviceCount: 0,
    succeeded: 0,
    failed: 0,
    pending: 0,
    unreachable: 0,
    lastError: null,
  });
});

Deno.test("computeAggregate() accepts any iterable of matched ids", () => {
  const agg = computeAggregate(input([], [state("a", "Running")]));
  const fromSet = computeAggregate({
    ...input([], [state("a", "Running")]),
    matched: new Set(["a"]),
  });
  assert.equal(agg.matchedDeviceCount, 0);
  assert.equal(fromSet.matchedDeviceCount, 1);
  assert.equal(fromSet.succeeded, 1);
});

// --- aggregateEquals ------------------------------------------------------------------

const BASE: Aggregate = {
  matchedDeviceCount: 3,
  succeeded: 1,
  failed: 1,
  pending: 1,
  unreachable: 0,
  lastError: { deviceId: "a", message: "boom", at: "2025-01-15T10:00:00.000Z" },
};

Deno.test("aggregateEquals() is true for equal aggregates", () => {
  assert.equal(aggregateEquals(BASE, structuredClone(BASE)), true);
  const noError = { ...BASE, lastError: null };
  assert.equal(aggregateEquals(noError, { ...noError }), true);
});

Deno.test("aggregateEquals() notices a change in any field", () => {
  const changes: Partial<Aggregate>[] = [
    { matchedDeviceCount: 4 },
    { succeeded: 2 },
    { failed: 0 },
    { pending: 2 },
    { unreachable: 1 },
    { lastError: null },
    { lastError: { ...BASE.lastError!, deviceId: "b" } },
    { lastError: { ...BASE.lastError!, message: "other" } },
    { lastError: { ...BASE.lastError!, at: "2025-01-15T10:00:01.000Z" } },
  ];
  for (const change of changes) {
    const other = { ...BASE, ...change };
    assert.equal(aggregateEquals(BASE, other), false, JSON.stringify(change));
    assert.equal(aggregateEquals(other, BASE), false, JSON.stringify(change));
  }
});

Deno.test("computeAggregate() says why a deployment targets no device; aggregateEquals() sees it change", () => {
  const why = "namespace team-a is bound to no devices";
  const none = computeAggregate({ ...input([], []), targetingProblem: why });
  assert.equal(none.targetingProblem, why);
  assert.equal(none.matchedDeviceCount, 0);
  const fine = computeAggregate(input([], []));
  assert.equal("targetingProblem" in fine, false, "absent when there is nothing to say");
  assert.equal(aggregateEquals(none, fine), false);
  assert.equal(aggregateEquals(none, { ...fine, targetingProblem: why }), true);
});
