import assert from "node:assert/strict";
import { diffLines, formatDiff } from "./text_diff.ts";

Deno.test("diffLines() keeps common lines and marks removals and additions", () => {
  assert.deepEqual(diffLines("a\nb\nc\n", "a\nx\nc\n"), [
    { op: " ", text: "a" },
    { op: "-", text: "b" },
    { op: "+", text: "x" },
    { op: " ", text: "c" },
  ]);
  assert.deepEqual(diffLines("", "a\n"), [{ op: "+", text: "a" }]);
  assert.deepEqual(diffLines("a\n", ""), [{ op: "-", text: "a" }]);
  assert.deepEqual(diffLines("same\n", "same\n"), [{ op: " ", text: "same" }]);
});

Deno.test("diffLines() rebuilds both texts exactly, on every pair of small inputs", () => {
  const texts = ["", "a", "a\nb", "b\na", "a\nb\nc", "a\nc", "c\nb\na", "a\na\nb", "x\ny"];
  for (const before of texts) {
    for (const after of texts) {
      const d = diffLines(before, after);
      const keep = (ops: string[]) => d.filter((l) => ops.includes(l.op)).map((l) => l.text);
      assert.deepEqual(keep([" ", "-"]), before === "" ? [] : before.split("\n"), before);
      assert.deepEqual(keep([" ", "+"]), after === "" ? [] : after.split("\n"), after);
      if (before === after) assert.ok(d.every((l) => l.op === " "), "equal texts: no change");
    }
  }
});

Deno.test("formatDiff() shows changes with context and elides the rest", () => {
  const before = ["l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"].join("\n");
  const after = before.replace("l2", "L2").replace("l8", "L8");
  assert.equal(
    formatDiff(before, after, 1),
    ["  l1", "- l2", "+ L2", "  l3", "  …", "  l7", "- l8", "+ L8", "  l9"].join("\n"),
  );
  assert.equal(formatDiff("a\n", "a\n"), "");
  assert.equal(formatDiff("a", "a\n"), "", "a final newline is not a change");
});
