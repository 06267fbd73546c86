/**
 * The progress of a deployment's rollout, as the operator writes it (DESIGN.md §9): in
 * `fleet-deployment-status` on the nats source and in `status.rollout` on the kube source.
 * A wire type: readers ignore unknown fields. Times are RFC 3339 on the control plane's clock.
 * Written by decideRollout (core/rollout.ts), which also reads it back to resume. Pure.
 * @module
 */
import * as z from "zod";
import { RevisionRef } from "./revisions.ts";

/**
 * Progressing: batches are moving. Paused: a person paused it. Degraded: a batch failed and
 * onFailure is Pause, or a person must act. RollingBack / RolledBack: a batch failed and every
 * updated device is being / has been sent back to the stable revision. Complete: every device
 * was given the revision and the last batch passed.
 */
export const RolloutPhases = [
  "Progressing",
  "Paused",
  "Degraded",
  "RollingBack",
  "RolledBack",
  "Complete",
] as const;
export type RolloutPhase = typeof RolloutPhases[number];

/** The condition types of DESIGN.md §9, as on the Deployment object of the kube source. */
export const RolloutConditionTypes = ["Progressing", "Paused", "Degraded", "Complete"] as const;
export type RolloutConditionType = typeof RolloutConditionTypes[number];

/** A Kubernetes-style condition; lastTransitionTime moves only when `status` changes. */
export const RolloutCondition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
});
export type RolloutCondition = z.infer<typeof RolloutCondition>;

/**
 * One batch's devices, each counted once in offline, healthy, failed, timedOut or (the rest)
 * updating; `updated` counts those reporting the new revision whatever their phase.
 */
export const BatchCounts = z.object({
  /** Devices of the batch the deployment still matches. */
  selected: z.number().int().nonnegative(),
  updated: z.number().int().nonnegative(),
  healthy: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  timedOut: z.number().int().nonnegative(),
  offline: z.number().int().nonnegative(),
});
export type BatchCounts = z.infer<typeof BatchCounts>;

/** One batch: its counts and the moments that matter to resume it exactly. */
export const BatchStatus = BatchCounts.extend({
  /** When the batch's devices were given the revision; absent while it has not started. */
  startedAt: z.string().optional(),
  /** When the batch first had enough healthy devices; absent while it has not. */
  bakeStartedAt: z.string().optional(),
  completedAt: z.string().optional(),
  /** Who approved a Manual batch, and when. */
  approvedBy: z.string().optional(),
  approvedAt: z.string().optional(),
  /** The last `fleet rollout retry`: failures reported before it no longer count. */
  retriedAt: z.string().optional(),
});
export type BatchStatus = z.infer<typeof BatchStatus>;

/** Why the rollout stopped: the batch, what failed, when. */
export const RolloutFailure = z.object({
  batch: z.number().int().positive(),
  message: z.string(),
  at: z.string(),
});
export type RolloutFailure = z.infer<typeof RolloutFailure>;

/**
 * The last person's action the operator took in (`fleet rollout pause|resume|approve|retry`):
 * the CLI waits for its stream sequence to show here to tell whether it was done or refused.
 */
export const AppliedAction = z.object({
  /** Its sequence in the rollout actions stream (core/rollout_actions.ts). */
  seq: z.number().int().positive(),
  verb: z.string(),
  by: z.string(),
  at: z.string(),
  /** Why it was not done, for the person who asked. */
  refused: z.string().optional(),
});
export type AppliedAction = z.infer<typeof AppliedAction>;

/** `rollout` of a deployment's status. */
export const RolloutStatus = z.object({
  phase: z.enum(RolloutPhases),
  /** The revision being rolled out (the newest). */
  revision: RevisionRef,
  /** The last revision that reached every device; null before any did. */
  stable: RevisionRef.nullable(),
  /** 1-based number of the batch the rollout is at (batch 1 is the first, the canary). */
  currentBatch: z.number().int().positive(),
  /** The policy's batches then the implicit final one, in order. */
  batches: z.array(BatchStatus),
  /** Devices frozen into the rollout when it started. */
  population: z.number().int().nonnegative(),
  /** Devices matched since the start: they get the stable revision until it completes. */
  joined: z.number().int().nonnegative(),
  startedAt: z.string(),
  /** Who paused it and when, while Paused. */
  pausedBy: z.string().optional(),
  pausedAt: z.string().optional(),
  failure: RolloutFailure.optional(),
  /** The current step and why it waits, for a field engineer. */
  message: z.string(),
  conditions: z.array(RolloutCondition),
  lastAction: AppliedAction.optional(),
});
export type RolloutStatus = z.infer<typeof RolloutStatus>;
