import assert from "node:assert/strict";
import { isStale, lastSeenAt } from "./liveness.ts";

const NOW = Date.UTC(2026, 5, 1, 12);
const HOUR = 3_600_000;

Deno.test("lastSeenAt() takes the receive time of a live heartbeat, whatever the broker says", () => {
  for (const brokerAt of [NOW - 3 * HOUR, NOW, NOW + 3 * HOUR]) {
    assert.equal(lastSeenAt({ brokerAt, receivedAt: NOW, live: true }), NOW);
  }
});

Deno.test("lastSeenAt() takes the broker's timestamp of a stored heartbeat, never later than now", () => {
  assert.equal(lastSeenAt({ brokerAt: NOW - HOUR, receivedAt: NOW, live: false }), NOW - HOUR);
  assert.equal(lastSeenAt({ brokerAt: NOW + HOUR, receivedAt: NOW, live: false }), NOW);
});

Deno.test("isStale() is true past the limit and for a device never seen", () => {
  assert.equal(isStale(NOW - 90_000, NOW, 90_000), false);
  assert.equal(isStale(NOW - 90_001, NOW, 90_000), true);
  assert.equal(isStale(NOW + HOUR, NOW, 90_000), false);
  assert.equal(isStale(undefined, NOW, 90_000), true);
});
