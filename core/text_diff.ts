/**
 * A line diff for people: what `fleet device enroll` shows before it overwrites a config the
 * device already holds. Longest-common-subsequence over lines (config files are short), printed
 * as `-` / `+` lines with up to `context` unchanged lines around each change.
 */

export type DiffLine = { op: " " | "-" | "+"; text: string };

/** Every line of `before` and `after` in order, each kept, removed or added. */
export function diffLines(before: string, after: string): DiffLine[] {
  const a = splitLines(before);
  const b = splitLines(after);
  // lcs[i][j] = length of the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j]
        ? lcs[i + 1]![j + 1]! + 1
        : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push({ op: " ", text: a[i++]! });
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // Removals first, as people read diffs.
      out.push({ op: "-", text: a[i++]! });
    } else {
      out.push({ op: "+", text: b[j++]! });
    }
  }
  return out;
}

/**
 * The changes with `context` unchanged lines around each, `…` where lines are skipped;
 * empty when the texts are equal.
 */
export function formatDiff(before: string, after: string, context = 2): string {
  const lines = diffLines(before, after);
  const near = lines.map(() => false);
  lines.forEach((line, n) => {
    if (line.op === " ") return;
    for (let k = Math.max(0, n - context); k <= Math.min(lines.length - 1, n + context); k++) {
      near[k] = true;
    }
  });
  const out: string[] = [];
  let skipped = false;
  lines.forEach((line, n) => {
    if (!near[n]) {
      skipped = true;
      return;
    }
    if (skipped && out.length > 0) out.push("  …");
    skipped = false;
    out.push(`${line.op} ${line.text}`);
  });
  return out.join("\n");
}

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
