/**
 * Revisions of a deployment's workload: every change of `spec.score` is a revision, identified
 * by a monotonically increasing number and the hash of the workload. The operator keeps the
 * last few (with their workload) so that `fleet rollout undo` needs nothing from the user.
 *
 * Like Kubernetes' ReplicaSet revisions, going back to older content makes a NEW revision
 * (number max+1) carrying that content, and the older entry is dropped: numbers only grow, so
 * "the newest revision" is always the one the spec asks for. Pure.
 * @module
 */
import * as z from "zod";
import { ScoreEnvelope } from "./score.ts";
import { specHash } from "./spec_hash.ts";
import { FleetError } from "./errors.ts";

/** Revisions kept per deployment unless the operator is told otherwise. */
export const DEFAULT_REVISION_HISTORY = 10;

/** The identity of a revision: its number and its workload's hash. */
export const RevisionRef = z.object({
  number: z.number().int().positive(),
  hash: z.string().min(1),
});
export type RevisionRef = z.infer<typeof RevisionRef>;

/** One kept revision (wire: the operator stores the list per deployment). */
export const Revision = RevisionRef.extend({
  /** Control-plane time the revision was made (RFC 3339). */
  createdAt: z.string(),
  /** The deployment generation that made it. */
  generation: z.number().int().nonnegative(),
  /** What changed from the revision before, for `fleet rollout history`. */
  change: z.string(),
  /** The workload, so that a rollback needs nothing from the user. */
  score: ScoreEnvelope,
});
export type Revision = z.infer<typeof Revision>;

/** A deployment's kept revisions, oldest first. */
export const RevisionHistory = z.object({ revisions: z.array(Revision) });
export type RevisionHistory = z.infer<typeof RevisionHistory>;

/**
 * The hash of a workload: 16 hex digits of SHA-256 over its canonical JSON. Only the score
 * counts: metadata, selector, rollout policy and minReadySeconds change no container.
 */
export function revisionHash(score: ScoreEnvelope): string {
  return specHash(score);
}

/** What {@link recordRevision} is given. */
export interface RevisionInput {
  score: ScoreEnvelope;
  generation: number;
  /** Control-plane time, epoch ms. */
  now: number;
  /** @default DEFAULT_REVISION_HISTORY */
  keep?: number;
  /** Revisions never dropped while others can be (the rollout's stable revision). */
  pinned?: readonly number[];
}

/** The outcome of {@link recordRevision}. */
export interface RecordedRevision {
  revisions: Revision[];
  /** The revision the score is: the newest one. */
  revision: Revision;
  /** False when the score is already the newest revision (a re-apply, a metadata edit). */
  created: boolean;
}

/**
 * The history after the spec's score became `input.score`: unchanged when it is the newest
 * revision's workload; otherwise a new revision numbered one above the highest, dropping an
 * older entry with the same workload (its content lives on under the new number) and the
 * oldest entries beyond `keep`, except the pinned ones.
 */
export function recordRevision(
  revisions: readonly Revision[],
  input: RevisionInput,
): RecordedRevision {
  const hash = revisionHash(input.score);
  const newest = revisions.at(-1);
  if (newest !== undefined && newest.hash === hash) {
    return { revisions: [...revisions], revision: newest, created: false };
  }
  const number = Math.max(0, ...revisions.map((r) => r.number)) + 1;
  const earlier = revisions.find((r) => r.hash === hash);
  const revision: Revision = {
    number,
    hash,
    createdAt: new Date(input.now).toISOString(),
    generation: input.generation,
    change: earlier !== undefined
      ? `back to the workload of revision ${earlier.number}`
      : describeChange(newest?.score, input.score),
    score: input.score,
  };
  const kept = [...revisions.filter((r) => r.hash !== hash), revision];
  return {
    revisions: trim(kept, input.keep ?? DEFAULT_REVISION_HISTORY, input.pinned ?? []),
    revision,
    created: true,
  };
}

/** The newest `keep` revisions, plus the pinned ones, oldest first. */
function trim(revisions: Revision[], keep: number, pinned: readonly number[]): Revision[] {
  const limit = Math.max(1, keep);
  let excess = revisions.length - limit;
  return revisions.filter((r) => {
    if (excess <= 0 || pinned.includes(r.number)) return true;
    excess--;
    return false;
  });
}

/** An undo that cannot be done; the message names the revision and what is kept. */
export class RevisionNotFoundError extends FleetError {
  override name = "RevisionNotFoundError";
  constructor(readonly wanted: number | undefined, readonly kept: readonly number[]) {
    super(
      "usage",
      wanted === undefined
        ? `there is no revision before the current one to go back to (kept: ${
          kept.join(", ") || "none"
        })`
        : `revision ${wanted} is not kept (kept: ${
          kept.join(", ") || "none"
        }); run fleet rollout history to see them`,
    );
  }
}

/**
 * The revision `fleet rollout undo` goes back to: `toRevision`, or the newest one before
 * `current`. Its workload becomes the spec's score again, which {@link recordRevision} turns
 * into a new revision.
 * @throws RevisionNotFoundError when that revision is not kept, or is the current one
 */
export function undoTarget(
  revisions: readonly Revision[],
  current: number,
  toRevision?: number,
): Revision {
  const kept = revisions.map((r) => r.number);
  const target = toRevision !== undefined
    ? revisions.find((r) => r.number === toRevision && r.number !== current)
    : revisions.filter((r) => r.number < current).at(-1);
  if (target === undefined) throw new RevisionNotFoundError(toRevision, kept);
  return target;
}

interface ServiceLike {
  name?: unknown;
  image?: unknown;
}

function servicesOf(score: ScoreEnvelope | undefined): Map<string, ServiceLike> | undefined {
  const services = (score?.data as { services?: unknown } | undefined)?.services;
  if (!Array.isArray(services)) return undefined;
  return new Map(
    services.map((s: ServiceLike, i) => [typeof s.name === "string" ? s.name : `#${i}`, s]),
  );
}

/**
 * One line saying what changed between two workloads, for `fleet rollout history`: services
 * added or removed, image changes, other settings changed.
 */
export function describeChange(previous: ScoreEnvelope | undefined, next: ScoreEnvelope): string {
  if (previous === undefined) return "first revision";
  if (previous.type !== next.type) return `workload type ${previous.type} → ${next.type}`;
  const before = servicesOf(previous);
  const after = servicesOf(next);
  if (before === undefined || after === undefined) return "workload changed";
  const parts: string[] = [];
  for (const [name, service] of after) {
    const old = before.get(name);
    if (old === undefined) parts.push(`${name} added (${String(service.image)})`);
    else if (old.image !== service.image) {
      parts.push(`${name}: ${String(old.image)} → ${String(service.image)}`);
    } else if (specHash(old) !== specHash(service)) parts.push(`${name}: settings changed`);
  }
  for (const name of before.keys()) if (!after.has(name)) parts.push(`${name} removed`);
  return parts.length > 0 ? parts.join("; ") : "workload settings changed";
}
