/**
 * The simulated fleet both control-plane benchmarks use: device i has labels
 * `group=g<i % M>` and `half=a|b` (`a` when ⌊i / M⌋ is even); deployment j selects
 * `group=g<j>`, narrowed to `half=a` when j % 4 == 1 and to `half notin (a)` when j % 4 == 3.
 * The truth of who matches what is computed here without core code, to check the operator.
 */
import { type Deployment, DEVICE_ID_LABEL, type LabelSelector } from "../core/mod.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import type { FleetStore } from "../cli/nats_store.ts";

export const deviceId = (i: number): string => `dev-${i}`;
export const deploymentName = (j: number): string => `d-${j}`;
export const halfOf = (i: number, m: number): "a" | "b" => Math.floor(i / m) % 2 === 0 ? "a" : "b";

/** The labels device i reports about itself, and targeting uses (registry and device-id). */
export function deviceLabels(i: number, m: number): Record<string, string> {
  return { ...registryLabels(i, m), [DEVICE_ID_LABEL]: deviceId(i) };
}

/** Device i's entry in the label registry, as a person sets it. */
export function registryLabels(i: number, m: number): Record<string, string> {
  return { group: `g${i % m}`, half: halfOf(i, m) };
}

export function selectorOf(j: number): LabelSelector {
  const matchLabels: Record<string, string> = { group: `g${j}` };
  if (j % 4 === 1) matchLabels.half = "a";
  if (j % 4 === 3) {
    return { matchLabels, matchExpressions: [{ key: "half", operator: "NotIn", values: ["a"] }] };
  }
  return { matchLabels };
}

/** The devices deployment j matches, among n devices and m deployments. */
export function matchedDevices(j: number, n: number, m: number): number[] {
  const out: number[] = [];
  for (let i = j; i < n; i += m) {
    if (j % 4 === 1 && halfOf(i, m) !== "a") continue;
    if (j % 4 === 3 && halfOf(i, m) === "a") continue;
    out.push(i);
  }
  return out;
}

/** A deployment of the simulated fleet: one service of an image no device pulls. */
export function benchDeployment(
  name: string,
  namespace: string,
  selector: LabelSelector,
): Deployment {
  return singleServiceDeployment({ name, namespace, image: "localhost/bench:1", selector });
}

/** Applies the M deployments (deployment j selects by {@link selectorOf}) at once. */
export async function applyDeployments(
  store: Pick<FleetStore, "apply">,
  m: number,
  namespace: string,
): Promise<void> {
  await Promise.all(
    Array.from(
      { length: m },
      (_, j) => store.apply(benchDeployment(deploymentName(j), namespace, selectorOf(j))),
    ),
  );
}
