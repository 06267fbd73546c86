/** Where the operator keeps each rollout's frozen population (the port; nats_populations.ts). */
import type { DeploymentRef } from "../core/keys.ts";
import type { RolloutDevice } from "../core/rollout.ts";

export interface PopulationStore {
  /** The population stored for `ref`, or undefined when none is whole. */
  load(ref: DeploymentRef): Promise<{ revision: number; devices: RolloutDevice[] } | undefined>;
  /** Stores the population of the rollout of `revision`, replacing the one before. */
  save(ref: DeploymentRef, revision: number, devices: readonly RolloutDevice[]): Promise<void>;
  /** Forgets the population of a deleted deployment. */
  removePopulation(ref: DeploymentRef): Promise<void>;
}
