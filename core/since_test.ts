import assert from "node:assert/strict";
import { parseSince } from "./since.ts";

const NOW = Date.parse("2026-12-06T10:00:00Z");

Deno.test("parseSince() reads an age in seconds, minutes, hours or days before now", () => {
  assert.equal(parseSince("90s", NOW), NOW - 90_000);
  assert.equal(parseSince("10m", NOW), NOW - 600_000);
  assert.equal(parseSince("2h", NOW), NOW - 7_200_000);
  assert.equal(parseSince("7d", NOW), NOW - 7 * 86_400_000);
});

Deno.test("parseSince() reads an RFC 3339 time with a zone", () => {
  assert.equal(parseSince("2026-12-06T09:30:00Z", NOW), Date.parse("2026-12-06T09:30:00Z"));
  assert.equal(
    parseSince("2026-12-06T10:30:00.5+01:00", NOW),
    Date.parse("2026-12-06T09:30:00.500Z"),
  );
});

Deno.test("parseSince() refuses anything else", () => {
  for (
    const text of ["", "10", "10 m", "-5m", "1w", "2026-12-06", "2026-12-06T09:30:00", "yesterday"]
  ) {
    assert.equal(parseSince(text, NOW), undefined, text);
  }
});
