/**
 * How the benchmarks print: progress lines (`# …`) while they run, then one line of figures;
 * numbers in it, and percentiles of what they measured.
 */
import { printLine } from "../adapters/output.ts";

/** A progress line: `# ` and `text` (the figures line, last, has no `#`). */
export function say(text: string): void {
  printLine(`# ${text}`);
}

/** The value at fraction `p` (0.5, 0.99) of `sorted`, ascending; NaN when it is empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** The median of `values`, in any order: {@link percentile} 0.5. */
export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

/** `x` with `digits` decimals, or `n/a` for NaN and infinities. */
export const fmt = (x: number, digits = 0): string =>
  Number.isFinite(x) ? x.toFixed(digits) : "n/a";
