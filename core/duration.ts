/**
 * Durations as a person writes them (`90s`, `10m`, `2h`, `7d`): the one format of `--since`
 * ages and of the rollout policy's `bake` and `deviceTimeout`. Pure.
 * @module
 */
import * as z from "zod";

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PATTERN = /^(\d+)([smhd])$/;

/** The rule of {@link parseDuration}, for messages. */
export const DURATION_RULE = "a whole number followed by s, m, h or d, such as 90s, 10m, 2h or 7d";

/** The milliseconds `text` means, or undefined when it is not a duration (see DURATION_RULE). */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}

/** A duration field of a file a person writes; the message names the value and the rule. */
export const Duration = z.string().regex(DURATION_PATTERN, {
  error: (issue) => `${JSON.stringify(issue.input)} is not a duration: write ${DURATION_RULE}`,
});
export type Duration = z.infer<typeof Duration>;
