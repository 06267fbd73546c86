import assert from "node:assert/strict";
import {
  type DeploymentState,
  LAST_ERROR_MAX,
  rolloutReportOf,
  shortError,
  stateChanged,
} from "./deployment_state.ts";

Deno.test("shortError() collapses whitespace and trims", () => {
  assert.equal(
    shortError("  pull failed:\n\n\timage  not\r\nfound  "),
    "pull failed: image not found",
  );
});

Deno.test("shortError() keeps a message of exactly LAST_ERROR_MAX characters", () => {
  const text = "x".repeat(LAST_ERROR_MAX);
  assert.equal(shortError(text), text);
});

Deno.test("shortError() truncates to LAST_ERROR_MAX characters ending with an ellipsis", () => {
  const cut = shortError("y".repeat(LAST_ERROR_MAX + 1));
  assert.equal(cut.length, LAST_ERROR_MAX);
  assert.ok(cut.endsWith("…"));
  assert.equal(cut, `${"y".repeat(LAST_ERROR_MAX - 1)}…`);
  assert.equal(shortError("z ".repeat(1000)).length, LAST_ERROR_MAX);
});

Deno.test("shortError() measures the length after collapsing whitespace", () => {
  const text = `${"a".repeat(LAST_ERROR_MAX - 2)}\n\n\n\nb`;
  assert.ok(text.length > LAST_ERROR_MAX);
  assert.equal(shortError(text), `${"a".repeat(LAST_ERROR_MAX - 2)} b`);
});

Deno.test("shortError() of an empty or blank message is empty", () => {
  assert.equal(shortError(""), "");
  assert.equal(shortError(" \n\t "), "");
});

const BASE: DeploymentState = {
  deviceId: "dev-1",
  namespace: "default",
  deployment: "web",
  generation: 2,
  phase: "Running",
  lastError: null,
  lastEventAt: "2025-01-15T10:00:00.000Z",
};

Deno.test("stateChanged() is true for the first report", () => {
  assert.equal(stateChanged(undefined, BASE), true);
});

Deno.test("stateChanged() is false when only the timestamp moved", () => {
  assert.equal(stateChanged(BASE, { ...BASE }), false);
  assert.equal(stateChanged(BASE, { ...BASE, lastEventAt: "2025-01-15T11:00:00.000Z" }), false);
});

Deno.test("stateChanged() is true on a new phase, error or generation", () => {
  assert.equal(stateChanged(BASE, { ...BASE, phase: "Failed" }), true);
  assert.equal(stateChanged(BASE, { ...BASE, lastError: "boom" }), true);
  assert.equal(stateChanged({ ...BASE, lastError: "boom" }, { ...BASE, lastError: "bang" }), true);
  assert.equal(stateChanged({ ...BASE, lastError: "boom" }, BASE), true);
  assert.equal(stateChanged(BASE, { ...BASE, generation: 3 }), true);
});

Deno.test("stateChanged() is true on a new revision, a service's health or its restarts", () => {
  const web = { name: "web", health: "healthy" as const, restarts: 0 };
  const running = { ...BASE, revision: "aaaa", services: [web] };
  assert.equal(stateChanged(running, { ...running, services: [{ ...web }] }), false);
  assert.equal(stateChanged(running, { ...running, revision: "bbbb" }), true);
  assert.equal(stateChanged(BASE, running), true);
  assert.equal(
    stateChanged(running, { ...running, services: [{ ...web, health: "unhealthy" }] }),
    true,
  );
  assert.equal(stateChanged(running, { ...running, services: [{ ...web, restarts: 1 }] }), true);
});

Deno.test("rolloutReportOf() maps Pending, Running and Failed to Progressing, Succeeded and Failed", () => {
  const at = Date.UTC(2026, 0, 1);
  const state = { ...BASE, revision: "0123456789abcdef" };
  assert.deepStrictEqual(rolloutReportOf({ ...state, phase: "Pending" }, at), {
    revision: "0123456789abcdef",
    phase: "Progressing",
    at,
  });
  assert.deepStrictEqual(rolloutReportOf(state, at), {
    revision: "0123456789abcdef",
    phase: "Succeeded",
    at,
  });
  const failed = { ...state, phase: "Failed" as const, lastError: "service web is unhealthy" };
  assert.deepStrictEqual(rolloutReportOf(failed, at), {
    revision: "0123456789abcdef",
    phase: "Failed",
    message: "service web is unhealthy",
    at,
  });
  assert.equal(rolloutReportOf(BASE, at), undefined, "no revision: an older agent");
});
