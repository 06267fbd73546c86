/**
 * `spec.rollout`: how a deployment's new revision reaches its devices. `Immediate` gives every
 * matched device the new revision at once; `Progressive` goes batch by batch (a canary ring
 * first), judged by the devices' health, and pauses or rolls back on failure. The schema is what
 * a person writes (strict through parseDeploymentManifest); {@link progressivePolicy} resolves
 * it into the values the rollout controller (core/rollout.ts) works with. Pure.
 * @module
 */
import * as z from "zod";
import { LabelKey, LabelSelector } from "./selector.ts";
import { Duration, parseDuration } from "./duration.ts";

export const RolloutStrategies = ["Immediate", "Progressive"] as const;
export type RolloutStrategy = typeof RolloutStrategies[number];
export const Approvals = ["Auto", "Manual"] as const;
export type Approval = typeof Approvals[number];
export const FailureActions = ["Pause", "Rollback"] as const;
export type FailureAction = typeof FailureActions[number];

/** Most explicit batches of one rollout (bounds the CRD's cost estimate and the status). */
export const MAX_BATCHES = 16;
/** How long a device may take to report the new revision healthy, unless the policy says. */
export const DEFAULT_DEVICE_TIMEOUT = "10m";

const PERCENT_PATTERN = /^(100|[1-9]?[0-9])%$/;

/** A count of devices or a percentage string such as "10%". */
export type CountOrPercent = number | string;

/** Why `value` is not a count ≥ `min` or a percentage from `min`% to 100%, or undefined. */
function countOrPercentProblem(field: string, value: number | string, min: number) {
  const rule = `write a whole number of devices (at least ${min}) or a percentage from ${min}% ` +
    `to 100% such as "10%"`;
  const bad = `${field} ${JSON.stringify(value)}: ${rule}`;
  if (typeof value === "number") return Number.isInteger(value) && value >= min ? undefined : bad;
  return PERCENT_PATTERN.test(value) && percentOf(value) >= min ? undefined : bad;
}

function percentOf(text: string): number {
  return Number(text.slice(0, -1));
}

/** A count or a percentage (int-or-string in the CRD), at least `min`. */
function countOrPercent(field: string, min: number) {
  const rule = (input: unknown) =>
    countOrPercentProblem(field, typeof input === "number" ? input : String(input), min);
  return z.union([z.number().int(), z.string()], {
    error: (issue) => rule(issue.input),
  }).superRefine((value, ctx) => {
    const problem = countOrPercentProblem(field, value, min);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });
}

/** A percentage from 1% to 100% (a pattern, so the CRD checks it too). */
const Percentage = z.string().regex(/^(100|[1-9][0-9]?)%$/, {
  error: (issue) =>
    `successThreshold ${JSON.stringify(issue.input)}: write a percentage from 1% to 100% such ` +
    `as "90%"`,
});

/** One step of a progressive rollout. */
export const RolloutBatch = z.object({
  /** Devices this batch may take, ANDed with the deployment's targetSelector. */
  selector: LabelSelector.optional(),
  /**
   * How far the rollout has reached once this batch is done, among the devices the batch's
   * selector matches in the population frozen at the start: a count, or a percentage rounded
   * up. Cumulative: `"10%"` then `"50%"` means half of the devices after the second batch.
   */
  limit: countOrPercent("limit", 1),
  /** Manual: the batch starts only after `fleet rollout approve`. @default Auto */
  approval: z.enum(Approvals).optional(),
});
export type RolloutBatch = z.infer<typeof RolloutBatch>;

/** How many devices of one group (devices sharing the `groupBy` label values) may update at once. */
export const DisruptionBudget = z.object({
  groupBy: z.array(LabelKey).min(1).max(8),
  /** A count, or a percentage of the group's devices rounded down (at least 1). */
  maxUnavailable: countOrPercent("maxUnavailable", 1),
});
export type DisruptionBudget = z.infer<typeof DisruptionBudget>;

/** The fields only a Progressive rollout takes. */
const PROGRESSIVE_FIELDS = [
  "batches",
  "successThreshold",
  "maxFailures",
  "bake",
  "deviceTimeout",
  "disruptionBudget",
  "onFailure",
] as const;

/** `spec.rollout`. The progressive fields have no zod defaults, so an Immediate rollout stays `{strategy}`. */
export const Rollout = z.object({
  strategy: z.enum(RolloutStrategies).default("Immediate"),
  /** Ordered batches; the devices no batch reaches form an implicit final batch. */
  batches: z.array(RolloutBatch).max(MAX_BATCHES).optional(),
  /** Share of a batch's reachable devices that must be healthy for it to pass. @default "100%" */
  successThreshold: Percentage.optional(),
  /** Failed or timed-out devices of a batch that trigger onFailure at once (count or %). */
  maxFailures: countOrPercent("maxFailures", 0).optional(),
  /** How long a batch must stay healthy before the next one starts. @default "0s" */
  bake: Duration.optional(),
  /** How long a reachable device may take to report the new revision healthy. @default "10m" */
  deviceTimeout: Duration.optional(),
  disruptionBudget: DisruptionBudget.optional(),
  /** Pause: stop and wait for a person. Rollback: every updated device back to stable. @default Rollback */
  onFailure: z.enum(FailureActions).optional(),
}).superRefine((rollout, ctx) => {
  if (rollout.strategy === "Immediate") {
    for (const field of PROGRESSIVE_FIELDS) {
      if (rollout[field] !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} applies only to strategy Progressive, and this rollout's strategy ` +
            `is Immediate: set strategy: Progressive or remove ${field}`,
        });
      }
    }
  } else if ((rollout.batches ?? []).length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["batches"],
      message: `strategy Progressive needs at least one batch, such as [{ limit: 1 }] for a ` +
        `canary device before the rest`,
    });
  }
});
export type Rollout = z.infer<typeof Rollout>;

/** One batch as the controller runs it. */
export interface PolicyBatch {
  selector?: LabelSelector;
  limit: CountOrPercent;
  approval: Approval;
}

/** A Progressive `spec.rollout` with every default applied and durations in milliseconds. */
export interface ProgressivePolicy {
  /** The explicit batches, then the implicit final one (every remaining device). */
  batches: PolicyBatch[];
  successThresholdPercent: number;
  maxFailures?: CountOrPercent;
  bakeMs: number;
  deviceTimeoutMs: number;
  disruptionBudget?: DisruptionBudget;
  onFailure: FailureAction;
}

/** The batch that takes every device the explicit batches left. */
export const FINAL_BATCH: PolicyBatch = { limit: "100%", approval: "Auto" };

/** The resolved policy of a Progressive rollout; undefined for Immediate. */
export function progressivePolicy(rollout: Rollout): ProgressivePolicy | undefined {
  if (rollout.strategy !== "Progressive") return undefined;
  const batches: PolicyBatch[] = (rollout.batches ?? []).map((batch) => ({
    ...(batch.selector !== undefined ? { selector: batch.selector } : {}),
    limit: batch.limit,
    approval: batch.approval ?? "Auto",
  }));
  return {
    batches: [...batches, FINAL_BATCH],
    successThresholdPercent: percentOf(rollout.successThreshold ?? "100%"),
    ...(rollout.maxFailures !== undefined ? { maxFailures: rollout.maxFailures } : {}),
    bakeMs: parseDuration(rollout.bake ?? "0s") ?? 0,
    deviceTimeoutMs: parseDuration(rollout.deviceTimeout ?? DEFAULT_DEVICE_TIMEOUT) ?? 0,
    ...(rollout.disruptionBudget !== undefined
      ? { disruptionBudget: rollout.disruptionBudget }
      : {}),
    onFailure: rollout.onFailure ?? "Rollback",
  };
}

/**
 * `value` as a number of devices out of `total`: a count as is (at most total), a percentage
 * rounded up or down.
 */
export function resolveCount(value: CountOrPercent, total: number, round: "up" | "down"): number {
  if (typeof value === "number") return Math.min(value, total);
  const exact = percentOf(value) * total / 100;
  // Integer arithmetic first: 30% of 10 is 3, not 3.0000000000000004 rounded up to 4.
  const whole = Math.round(exact);
  const near = Math.abs(exact - whole) < 1e-9;
  return near ? whole : round === "up" ? Math.ceil(exact) : Math.floor(exact);
}

/** Devices of a batch of `size` that must be healthy for it to pass at `thresholdPercent`. */
export function neededHealthy(size: number, thresholdPercent: number): number {
  return resolveCount(`${thresholdPercent}%`, size, "up");
}

/**
 * What a person should know about a rollout policy before applying it: today, batches so small
 * that their successThreshold is effectively 100 % (rounded up, one failure fails the batch).
 * A percentage limit is sized against `populationSize` when given (the devices the deployment
 * matches now); batches with their own selector are sized only when their limit is a count.
 */
export function rolloutWarnings(rollout: Rollout, populationSize?: number): string[] {
  const policy = progressivePolicy(rollout);
  if (policy === undefined || policy.successThresholdPercent >= 100) return [];
  const threshold = policy.successThresholdPercent;
  const minimum = Math.ceil(100 / (100 - threshold));
  const warnings: string[] = [];
  // Devices the selector-less batches have reached so far; undefined once it is unknown.
  let reached: number | undefined = 0;
  (rollout.batches ?? []).forEach((batch, index) => {
    let size: number | undefined;
    if (batch.selector !== undefined) {
      if (typeof batch.limit === "number") size = batch.limit;
    } else if (typeof batch.limit === "number" || populationSize !== undefined) {
      const total = populationSize ?? Number.MAX_SAFE_INTEGER;
      const cumulative = resolveCount(batch.limit, total, "up");
      if (reached !== undefined) size = Math.max(0, cumulative - reached);
      reached = Math.max(reached ?? 0, cumulative);
    } else {
      reached = undefined;
    }
    if (size === undefined || size === 0 || size >= minimum) return;
    const of = populationSize !== undefined && typeof batch.limit === "string"
      ? ` (${batch.limit} of ${populationSize} devices)`
      : "";
    warnings.push(
      `batch ${index + 1} has ${size} device${size === 1 ? "" : "s"}${of}: a successThreshold ` +
        `of ${threshold}% of ${size} is ${neededHealthy(size, threshold)} (rounded up), so ` +
        `every device must succeed; make the batch at least ${minimum} devices or lower the ` +
        `threshold`,
    );
  });
  return warnings;
}
