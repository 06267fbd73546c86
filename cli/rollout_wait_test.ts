import assert from "node:assert/strict";
import { FleetError } from "../core/errors.ts";
import type { RolloutStatus } from "../core/rollout_status.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import type { RolloutSnapshot, RolloutTarget } from "./rollout_target.ts";
import { actionOutcome, waitForAction } from "./rollout_wait.ts";

const REF = { namespace: "shop", name: "web" };
const ROLLOUT: RolloutStatus = {
  phase: "Progressing",
  revision: { number: 2, hash: "abc" },
  stable: { number: 1, hash: "def" },
  currentBatch: 1,
  batches: [],
  population: 3,
  joined: 0,
  startedAt: "2026-12-06T08:00:00Z",
  message: "batch 1 of 2: waiting for 1 more of 1 device to be healthy",
  conditions: [],
};

/** Statuses pushed by the test, as a watch delivers them. */
class PushedTarget implements RolloutTarget {
  #push: ((s: RolloutSnapshot | undefined) => void) | undefined;

  read(): Promise<RolloutSnapshot | undefined> {
    return Promise.resolve(undefined);
  }

  async *watch(_ref: unknown, signal: AbortSignal): AsyncIterable<RolloutSnapshot | undefined> {
    while (!signal.aborted) {
      const next = await new Promise<RolloutSnapshot | undefined | "aborted">((resolve) => {
        this.#push = resolve;
        signal.addEventListener("abort", () => resolve("aborted"), { once: true });
      });
      if (next === "aborted") return;
      yield next;
    }
  }

  push(lastAction?: RolloutStatus["lastAction"]) {
    this.#push?.({
      metadata: { ...REF },
      spec: undefined,
      rollout: { ...ROLLOUT, ...(lastAction ? { lastAction } : {}) },
    });
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("waitForAction() waits until the status shows the action's sequence (or a later one)", async () => {
  const target = new PushedTarget();
  const clock = new FakeClock();
  const waiting = waitForAction(target, { ref: REF, verb: "pause", seq: 5 }, {
    timeoutMs: 30_000,
    clock,
  });
  await settle();
  target.push();
  await settle();
  target.push({ seq: 4, verb: "resume", by: "a", at: "t" });
  await settle();
  target.push({ seq: 6, verb: "approve", by: "b", at: "t" });
  const rollout = await waiting;
  assert.equal(rollout.lastAction?.seq, 6);
});

Deno.test("waitForAction() knows its action in a stream the broker lost and made anew (numbers start over)", async () => {
  const target = new PushedTarget();
  const before = { seq: 8, verb: "pause", by: "a", at: "2026-12-06T08:00:00Z" };
  const waiting = waitForAction(target, { ref: REF, verb: "resume", seq: 1, before }, {
    timeoutMs: 30_000,
    clock: new FakeClock(),
  });
  await settle();
  target.push(before);
  await settle();
  target.push({ seq: 1, verb: "resume", by: "b", at: "2026-12-06T08:05:00Z" });
  const rollout = await waiting;
  assert.deepEqual([rollout.lastAction?.seq, rollout.lastAction?.verb], [1, "resume"]);
});

Deno.test("waitForAction() gives up after its timeout, saying the action is kept", async () => {
  const clock = new FakeClock();
  const waiting = waitForAction(new PushedTarget(), { ref: REF, verb: "retry", seq: 3 }, {
    timeoutMs: 30_000,
    clock,
  });
  const outcome = waiting.then(() => undefined, (e: unknown) => e);
  await clock.advance(29_999);
  await clock.advance(1);
  const error = await outcome;
  assert.ok(error instanceof FleetError && error.kind === "failure", String(error));
  assert.equal(
    error.message,
    "the operator has not taken the retry of deployment shop/web within 30 s (is it running?); " +
      "the action is kept (number 3) and will be applied when the operator runs",
  );
});

Deno.test("actionOutcome() says where the rollout stands, or why the action was refused", () => {
  const action = { ref: REF, verb: "pause", seq: 5 };
  assert.equal(
    actionOutcome(action, {
      ...ROLLOUT,
      phase: "Paused",
      lastAction: { seq: 5, verb: "pause", by: "a", at: "t" },
    }),
    "pause of deployment shop/web done: Paused — " + ROLLOUT.message,
  );
  assert.match(
    actionOutcome(action, { ...ROLLOUT, lastAction: { seq: 7, verb: "resume", by: "b", at: "t" } }),
    /^pause of deployment shop\/web done \(then resume by b was taken too\): Progressing/,
  );
  assert.throws(
    () =>
      actionOutcome(action, {
        ...ROLLOUT,
        lastAction: { seq: 5, verb: "pause", by: "a", at: "t", refused: "it is already paused" },
      }),
    (e: unknown) =>
      e instanceof FleetError && e.kind === "failure" &&
      e.message === "pause of deployment shop/web refused: it is already paused",
  );
});
