/** Where the operator keeps each deployment's last revisions (the port; nats_revisions.ts). */
import type { DeploymentRef } from "../core/keys.ts";
import type { Revision } from "../core/revisions.ts";

export interface RevisionStore {
  /** The kept revisions of `ref`, oldest first. */
  list(ref: DeploymentRef): Promise<Revision[]>;
  put(ref: DeploymentRef, revision: Revision): Promise<void>;
  /** Forgets the revisions `numbers` of `ref`; one already gone is fine. */
  remove(ref: DeploymentRef, numbers: readonly number[]): Promise<void>;
}
