/**
 * How a person's rollout action (`fleet rollout pause|resume|approve|retry`) reaches the
 * operator, in that person's name (DESIGN.md §9 "Who is asking"): a JetStream message on
 * `fleet-rollout-actions.<namespace>.<deployment>.<principal>`. The broker lets each person
 * publish only subjects ending in their own principal, so the operator reads who asked from
 * the subject, never from the body. The stream keeps every action: it is their record (who,
 * what, when: the stream's timestamp is the control plane's clock). Pure.
 * @module
 */
import * as z from "zod";
import { validateIdentifier } from "./ids.ts";
import type { DeploymentRef } from "./keys.ts";
import { RolloutActionVerbs } from "./rollout.ts";

/** The stream of rollout actions and its subjects' first token. */
export const ROLLOUT_ACTIONS_STREAM = "fleet-rollout-actions";

/** How long the actions are kept: their record, for a season of rollouts. */
export const ROLLOUT_ACTIONS_MAX_AGE_MS = 90 * 24 * 3_600_000;

/** The body of an action message (a wire type: readers ignore unknown fields). */
export const RolloutActionRequest = z.object({
  verb: z.enum(RolloutActionVerbs),
  /** approve: the 1-based batch to approve; by default the next Manual batch not started. */
  batch: z.number().int().positive().optional(),
});
export type RolloutActionRequest = z.infer<typeof RolloutActionRequest>;

/**
 * The subject `principal` publishes an action on `ref` to.
 * @throws {InvalidIdentifierError} when a part is not an RFC 1123 label.
 */
export function rolloutActionSubject(ref: DeploymentRef, principal: string): string {
  validateIdentifier("namespace", ref.namespace);
  validateIdentifier("deployment name", ref.name);
  validateIdentifier("principal", principal);
  return `${ROLLOUT_ACTIONS_STREAM}.${ref.namespace}.${ref.name}.${principal}`;
}

/** The deployment and principal of an action subject; undefined when it is not one. */
export function parseRolloutActionSubject(
  subject: string,
): { ref: DeploymentRef; principal: string } | undefined {
  const tokens = subject.split(".");
  if (tokens.length !== 4 || tokens[0] !== ROLLOUT_ACTIONS_STREAM) return undefined;
  const [, namespace, name, principal] = tokens as [string, string, string, string];
  if (!namespace || !name || !principal) return undefined;
  return { ref: { namespace, name }, principal };
}
