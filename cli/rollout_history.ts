/** `fleet rollout history` output: a deployment's kept revisions, newest last. Pure. */
import type { DeploymentRef } from "../core/keys.ts";
import type { Revision } from "../core/revisions.ts";
import { renderTable } from "./table.ts";

/** The table of `revisions` (oldest first); the newest is the one the spec asks for. */
export function renderRevisions(ref: DeploymentRef, revisions: readonly Revision[]): string {
  if (revisions.length === 0) {
    return `No revisions of deployment ${ref.namespace}/${ref.name} (is it applied, and is ` +
      `the operator running?)`;
  }
  const newest = revisions.at(-1)!.number;
  return renderTable(
    ["REVISION", "CREATED", "GENERATION", "HASH", "CHANGE"],
    revisions.map((r) => [
      r.number === newest ? `${r.number} (current)` : String(r.number),
      r.createdAt,
      String(r.generation),
      r.hash,
      r.change,
    ]),
  );
}
