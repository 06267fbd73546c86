/**
 * `fleet rollout status` output: where a progressive rollout stands, batch by batch, and the
 * step it waits on (DESIGN.md §9 "Revisions and rollout"). Pure.
 */
import type { DeploymentRef } from "../core/keys.ts";
import type { Approval } from "../core/rollout_policy.ts";
import type { RolloutPhase, RolloutStatus } from "../core/rollout_status.ts";
import type { RevisionRef } from "../core/revisions.ts";
import { age, renderTable } from "./table.ts";

/** What {@link renderRolloutStatus} shows. */
export interface RolloutView {
  ref: DeploymentRef;
  /** Undefined for a deployment that rolls out Immediately (or before its rollout started). */
  rollout: RolloutStatus | undefined;
  /** Each batch's approval, from the spec, when known: a Manual one not started waits for it. */
  approvals?: readonly Approval[];
  /** Now, epoch ms, for ages. */
  now: number;
}

/** "Last action:" and two spaces: values line up whichever lines there are. */
const LABEL_WIDTH = 14;

const revision = (r: RevisionRef) => `${r.number} (${r.hash})`;

/** "2026-12-06T08:00:00.000Z (5m ago)". */
function when(at: string, now: number): string {
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? at : `${at} (${age(ms, now)} ago)`;
}

/**
 * The state of batch `index` (0-based): done, the step it is at (waiting for approval,
 * updating, baking, paused, failed, rolling back, rolled back), or — when it has not started.
 */
export function batchState(
  rollout: RolloutStatus,
  index: number,
  approvals?: readonly Approval[],
): string {
  const batch = rollout.batches[index];
  if (batch === undefined) return "—";
  const number = index + 1;
  const { phase, currentBatch } = rollout;
  if (phase === "RollingBack" || phase === "RolledBack") {
    if (batch.startedAt === undefined) return "—";
    return phase === "RollingBack" ? "rolling back" : "rolled back";
  }
  if (rollout.failure?.batch === number) return "failed";
  if (batch.completedAt !== undefined || number < currentBatch || phase === "Complete") {
    return "done";
  }
  if (number > currentBatch) return "—";
  if (batch.startedAt === undefined) {
    if (approvals?.[index] === "Manual" && batch.approvedBy === undefined) {
      return "waiting for approval";
    }
    return phase === "Paused" ? "paused" : "current";
  }
  if (batch.bakeStartedAt !== undefined) return "baking";
  return phase === "Paused" ? "updating (paused)" : "updating";
}

/** The status of `view.ref`'s rollout: a header, the batches, then the step it is at. */
export function renderRolloutStatus(view: RolloutView): string {
  const { ref, rollout, now } = view;
  const name = `${ref.namespace}/${ref.name}`;
  if (rollout === undefined) {
    return `Deployment ${name} rolls out Immediately: every device it matches gets each ` +
      `change at once (no progressive rollout to show).`;
  }
  const header: [string, string][] = [
    ["Deployment", name],
    ["Phase", rollout.phase],
    [
      "Revision",
      `${revision(rollout.revision)} ← stable ${
        rollout.stable === null ? "none yet" : revision(rollout.stable)
      }`,
    ],
    ["Started", when(rollout.startedAt, now)],
    [
      "Devices",
      `${rollout.population} in the rollout` +
      (rollout.joined > 0
        ? `; ${rollout.joined} joined since (they run the stable revision until it completes)`
        : ""),
    ],
  ];
  if (rollout.pausedBy !== undefined) {
    header.push([
      "Paused by",
      rollout.pausedBy + (rollout.pausedAt ? `, ${when(rollout.pausedAt, now)}` : ""),
    ]);
  }
  if (rollout.failure !== undefined) {
    const { batch, message, at } = rollout.failure;
    header.push(["Failure", `batch ${batch}, ${when(at, now)}: ${message}`]);
  }
  const action = rollout.lastAction;
  if (action !== undefined) {
    header.push([
      "Last action",
      `${action.verb} by ${action.by}, ${when(action.at, now)}` +
      (action.refused === undefined ? "" : ` — refused: ${action.refused}`),
    ]);
  }
  const table = renderTable(
    ["BATCH", "SELECTED", "UPDATED", "HEALTHY", "FAILED", "TIMED OUT", "OFFLINE", "STATE"],
    rollout.batches.map((b, i) => [
      String(i + 1) + (i === rollout.batches.length - 1 ? " (rest)" : ""),
      String(b.selected),
      String(b.updated),
      String(b.healthy),
      String(b.failed),
      String(b.timedOut),
      String(b.offline),
      batchState(rollout, i, view.approvals),
    ]),
  );
  return [
    ...header.map(([label, value]) => `${`${label}:`.padEnd(LABEL_WIDTH)}${value}`),
    "",
    table,
    "",
    `Now: ${rollout.message}`,
  ].join("\n");
}

/**
 * How `fleet rollout status --watch` ends on `phase`: Complete succeeds; RolledBack fails, and
 * so does Degraded (it waits for a person); undefined while the rollout goes on.
 */
export function watchOutcome(phase: RolloutPhase): "complete" | "failed" | undefined {
  if (phase === "Complete") return "complete";
  return phase === "RolledBack" || phase === "Degraded" ? "failed" : undefined;
}
