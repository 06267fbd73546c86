import assert from "node:assert/strict";
import type { BatchStatus, RolloutStatus } from "../core/rollout_status.ts";
import { batchState, renderRolloutStatus, watchOutcome } from "./rollout_status.ts";

const REF = { namespace: "shop", name: "web" };
const NOW = Date.parse("2026-12-06T08:10:00.000Z");
const counts = (selected: number, healthy: number, more: Partial<BatchStatus> = {}) => ({
  selected,
  updated: healthy,
  healthy,
  failed: 0,
  timedOut: 0,
  offline: 0,
  ...more,
});

/** Canary done, batch 2 baking, the rest waiting. */
const baking: RolloutStatus = {
  phase: "Progressing",
  revision: { number: 3, hash: "a1b2c3d4e5f60718" },
  stable: { number: 2, hash: "0f1e2d3c4b5a6978" },
  currentBatch: 2,
  batches: [
    counts(1, 1, {
      startedAt: "2026-12-06T08:00:00.000Z",
      bakeStartedAt: "2026-12-06T08:01:00.000Z",
      completedAt: "2026-12-06T08:03:00.000Z",
    }),
    counts(5, 4, {
      offline: 1,
      startedAt: "2026-12-06T08:03:00.000Z",
      bakeStartedAt: "2026-12-06T08:05:00.000Z",
    }),
    counts(4, 0),
  ],
  population: 10,
  joined: 2,
  startedAt: "2026-12-06T08:00:00.000Z",
  message: "batch 2 of 3: healthy (4 of 4 reachable, 1 offline); baking for 5m more",
  conditions: [],
  lastAction: {
    seq: 7,
    verb: "approve",
    by: "alice-1",
    at: "2026-12-06T08:02:00.000Z",
    refused: "batch 1 needs no approval",
  },
};

Deno.test("renderRolloutStatus() shows the header, one row per batch and the current step last", () => {
  assert.equal(
    renderRolloutStatus({ ref: REF, rollout: baking, now: NOW }),
    [
      "Deployment:   shop/web",
      "Phase:        Progressing",
      "Revision:     3 (a1b2c3d4e5f60718) ← stable 2 (0f1e2d3c4b5a6978)",
      "Started:      2026-12-06T08:00:00.000Z (10m ago)",
      "Devices:      10 in the rollout; 2 joined since (they run the stable revision until it completes)",
      "Last action:  approve by alice-1, 2026-12-06T08:02:00.000Z (8m ago) — refused: batch 1 needs no approval",
      "",
      "BATCH      SELECTED   UPDATED   HEALTHY   FAILED   TIMED OUT   OFFLINE   STATE",
      "1          1          1         1         0        0           0         done",
      "2          5          4         4         0        0           1         baking",
      "3 (rest)   4          0         0         0        0           0         —",
      "",
      "Now: batch 2 of 3: healthy (4 of 4 reachable, 1 offline); baking for 5m more",
    ].join("\n"),
  );
});

Deno.test("renderRolloutStatus() names who paused and why a rollout failed", () => {
  const text = renderRolloutStatus({
    ref: REF,
    now: NOW,
    rollout: {
      ...baking,
      phase: "Paused",
      stable: null,
      joined: 0,
      pausedBy: "bob-2",
      pausedAt: "2026-12-06T08:09:00.000Z",
      failure: { batch: 2, message: "2 of 5 devices failed", at: "2026-12-06T08:08:00.000Z" },
    },
  });
  assert.match(text, /^Revision: {5}3 \(a1b2c3d4e5f60718\) ← stable none yet$/m);
  assert.match(text, /^Devices: {6}10 in the rollout$/m);
  assert.match(text, /^Paused by: {4}bob-2, 2026-12-06T08:09:00.000Z \(60s ago\)$/m);
  assert.match(text, /^Failure: {6}batch 2, 2026-12-06T08:08:00.000Z \(2m ago\): 2 of 5/m);
  assert.match(text, /^2 .* failed$/m);
});

Deno.test("renderRolloutStatus() says a deployment without rollout status rolls out Immediately", () => {
  assert.match(
    renderRolloutStatus({ ref: REF, rollout: undefined, now: NOW }),
    /^Deployment shop\/web rolls out Immediately: every device it matches gets each change at once/,
  );
});

Deno.test("batchState() tells each step of a batch", () => {
  const notStarted = { ...baking, currentBatch: 3 };
  assert.equal(batchState(notStarted, 2, ["Auto", "Auto", "Manual"]), "waiting for approval");
  assert.equal(
    batchState(
      {
        ...notStarted,
        batches: [...baking.batches.slice(0, 2), counts(4, 0, { approvedBy: "a" })],
      },
      2,
      [
        "Auto",
        "Auto",
        "Manual",
      ],
    ),
    "current",
  );
  assert.equal(batchState(notStarted, 2), "current");
  assert.equal(batchState({ ...notStarted, phase: "Paused" }, 2), "paused");
  assert.equal(batchState(notStarted, 1), "done", "an earlier batch");
  const updating = { ...baking, batches: [baking.batches[0]!, counts(5, 1, { startedAt: "x" })] };
  assert.equal(batchState(updating, 1), "updating");
  assert.equal(batchState({ ...updating, phase: "Paused" }, 1), "updating (paused)");
  assert.equal(batchState({ ...baking, phase: "RollingBack" }, 1), "rolling back");
  assert.equal(batchState({ ...baking, phase: "RolledBack" }, 0), "rolled back");
  assert.equal(batchState({ ...baking, phase: "RolledBack" }, 2), "—", "never started");
  assert.equal(batchState({ ...baking, phase: "Complete", currentBatch: 3 }, 2), "done");
  assert.equal(batchState(baking, 9), "—");
});

Deno.test("watchOutcome() ends a watch on Complete (success), RolledBack and Degraded (failure)", () => {
  assert.equal(watchOutcome("Complete"), "complete");
  assert.equal(watchOutcome("RolledBack"), "failed");
  assert.equal(watchOutcome("Degraded"), "failed");
  for (const phase of ["Progressing", "Paused", "RollingBack"] as const) {
    assert.equal(watchOutcome(phase), undefined);
  }
});
