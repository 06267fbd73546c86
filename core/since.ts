/**
 * `--since` as a person writes it: an age (`90s`, `10m`, `2h`, `7d`) or an RFC 3339 time.
 * Shared by the commands that read history (`fleet audit`, later `fleet logs`). Pure.
 * @module
 */
import { parseDuration } from "./duration.ts";

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * The epoch ms `text` means at `now`, or undefined when it is neither an age nor an RFC 3339
 * time (the caller names the flag and the rule).
 */
export function parseSince(text: string, now: number): number | undefined {
  const ago = parseDuration(text);
  if (ago !== undefined) return now - ago;
  if (!RFC3339.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** The rule of {@link parseSince}, for messages. */
export const SINCE_RULE = "an age such as 90s, 10m, 2h or 7d, or an RFC 3339 time such as " +
  "2026-12-06T09:30:00Z";
