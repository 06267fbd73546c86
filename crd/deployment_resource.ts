/**
 * The status of the `Deployment` custom resource (kube source) and its `Accepted` condition:
 * whether the operator took the CR's current generation. The CRD schema cannot express every
 * rule of core's DeploymentSpec (an environment variable longer than the kernel takes, a host
 * port published twice), so a CR applied with kubectl can be stored and still be refused by the
 * operator; the condition is how whoever applied it learns why. Pure.
 * @module
 */
import type * as z from "zod";
import { DeploymentStatus } from "../core/deployment_status.ts";
import { type Condition, Conditions, type ConditionStatus, kubeTime } from "./device_resource.ts";

/**
 * `status` of a Deployment CR: the wire DeploymentStatus without its NATS-only fields, and the
 * conditions. Each field is optional: a CR refused from its first generation has only its
 * conditions.
 */
export const DeploymentResourceStatus = DeploymentStatus.pick({
  observedGeneration: true,
  aggregate: true,
  rollout: true,
}).partial().extend({ conditions: Conditions.optional() });
export type DeploymentResourceStatus = z.infer<typeof DeploymentResourceStatus>;

/** The condition type saying whether the operator took the current generation. */
export const ACCEPTED = "Accepted";

/** Reasons of the Accepted condition. */
export const AcceptedReasons = {
  Valid: "Valid",
  InvalidSpec: "InvalidSpec",
} as const;

/** Longest condition message the API server stores (metav1.Condition). */
const MESSAGE_MAX = 32_768;

/**
 * Why a generation is refused and what devices run meanwhile, within a condition message's
 * length (a long list of problems is cut, never the rest).
 * @param problems core's validation messages, each naming its field (`spec.score...`)
 * @param kept the generation devices keep; undefined when none was ever accepted
 */
export function refusalMessage(
  generation: number,
  problems: string,
  kept: number | undefined,
): string {
  const head = `generation ${generation} refused: `;
  const tail = kept === undefined
    ? "; no earlier generation was accepted, so no device runs this deployment until a valid " +
      "one is applied"
    : `; devices keep generation ${kept} until a valid one is applied`;
  const room = MESSAGE_MAX - head.length - tail.length;
  return head + (problems.length > room ? `${problems.slice(0, room - 1)}…` : problems) + tail;
}

function sameCondition(a: Condition, b: Condition): boolean {
  return a.type === b.type && a.status === b.status && a.reason === b.reason &&
    a.message === b.message && a.lastTransitionTime === b.lastTransitionTime &&
    a.observedGeneration === b.observedGeneration;
}

/**
 * The Accepted condition to write for a Deployment at `generation`, or undefined when there is
 * nothing to write: `previous` already says it, or the CR is valid and was never refused (a
 * valid CR costs no write, at operator start or on any change). Once refused, a CR's condition
 * follows each generation (`observedGeneration`), so it never speaks of an old one.
 * lastTransitionTime moves only when `status` does.
 * @param problems why core refuses the generation's spec; undefined when it is valid
 * @param kept the generation devices keep meanwhile (see {@link refusalMessage})
 * @param previous the Accepted condition the CR's status carries, if any
 */
export function acceptedCondition(
  generation: number,
  problems: string | undefined,
  kept: number | undefined,
  now: number,
  previous: Condition | undefined,
): Condition | undefined {
  if (problems === undefined && previous === undefined) return undefined;
  const status: ConditionStatus = problems === undefined ? "True" : "False";
  const next: Condition = {
    type: ACCEPTED,
    status,
    reason: problems === undefined ? AcceptedReasons.Valid : AcceptedReasons.InvalidSpec,
    message: problems === undefined
      ? `generation ${generation} accepted`
      : refusalMessage(generation, problems, kept),
    lastTransitionTime: previous?.status === status ? previous.lastTransitionTime : kubeTime(now),
    observedGeneration: generation,
  };
  return previous !== undefined && sameCondition(previous, next) ? undefined : next;
}

/** The Accepted condition among `conditions`, if any. */
export function acceptedOf(conditions: readonly Condition[] | undefined): Condition | undefined {
  return conditions?.find((c) => c.type === ACCEPTED);
}

/** The operator's refusal of `generation` (its message), if the conditions hold one. */
export function refusalOf(
  conditions: readonly Condition[] | undefined,
  generation: number,
): string | undefined {
  const accepted = acceptedOf(conditions);
  return accepted?.status === "False" && accepted.observedGeneration === generation
    ? accepted.message
    : undefined;
}
