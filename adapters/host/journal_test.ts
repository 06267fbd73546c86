import assert from "node:assert/strict";
import { journalArgs } from "./journal.ts";

Deno.test("journalArgs() reads the agent's unit, as text or with timestamps, tail, since and follow", () => {
  assert.deepEqual(journalArgs({ follow: false, timestamps: false }), [
    "--unit",
    "fleet-agent",
    "--no-pager",
    "--output",
    "cat",
  ]);
  assert.deepEqual(
    journalArgs({ follow: true, timestamps: true, tail: 50, sinceSeconds: 1796526000 }).slice(3),
    ["--output", "short-iso-precise", "--lines", "50", "--since", "@1796526000", "--follow"],
  );
});
