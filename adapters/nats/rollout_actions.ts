/**
 * People's rollout actions on NATS (core/rollout_actions.ts): the JetStream stream
 * `fleet-rollout-actions`, which the operator creates and reads, and the publish of one action
 * in its sender's name, stored before it is acknowledged.
 */
import { type NatsConnection, RequestError } from "@nats-io/nats-core";
import { DiscardPolicy, jetstream, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import {
  ROLLOUT_ACTIONS_MAX_AGE_MS,
  ROLLOUT_ACTIONS_STREAM,
  type RolloutActionRequest,
  rolloutActionSubject,
} from "../../core/rollout_actions.ts";
import type { DeploymentRef } from "../../core/keys.ts";
import { FleetError } from "../../core/errors.ts";
import { ensureStream } from "./_stream.ts";
import { deniedByBroker } from "./denied.ts";

/**
 * Creates the rollout actions stream unless it exists: every action is kept for
 * ROLLOUT_ACTIONS_MAX_AGE_MS (their record), within 64 MiB, oldest dropped first; records cannot
 * be deleted one by one or purged through the API.
 *
 * @param replicas copies of the stream: 1 on one server, 3 on a cluster
 * @returns whether it had to be created
 */
export function ensureRolloutActionsStream(
  nc: NatsConnection,
  replicas: number,
): Promise<boolean> {
  return ensureStream(nc, {
    name: ROLLOUT_ACTIONS_STREAM,
    subjects: [`${ROLLOUT_ACTIONS_STREAM}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    num_replicas: replicas,
    max_age: ROLLOUT_ACTIONS_MAX_AGE_MS * 1e6,
    max_bytes: 64 * 1024 * 1024,
    max_msg_size: 1024,
    discard: DiscardPolicy.Old,
    deny_delete: true,
    deny_purge: true,
  });
}

/**
 * Stores `request` on `ref`'s action subject in `principal`'s name.
 *
 * @returns its sequence in the stream: the operator writes it to the status once it took it
 * @throws {FleetError} when the broker refuses the subject (the role does not allow it) or
 *   there is no stream to store it (the operator never ran)
 */
export async function publishRolloutAction(
  nc: NatsConnection,
  ref: DeploymentRef,
  principal: string,
  request: RolloutActionRequest,
): Promise<number> {
  const subject = rolloutActionSubject(ref, principal);
  try {
    const ack = await jetstream(nc, { checkAPI: false }).publish(subject, JSON.stringify(request), {
      timeout: 5_000,
    });
    return ack.seq;
  } catch (error) {
    if (deniedByBroker(error)) {
      throw new FleetError(
        "failure",
        `your role does not allow rollout actions: the broker refused ${subject} for ` +
          `"${principal}" (a maintainer or admin may pause, resume, approve and retry)`,
        { cause: error },
      );
    }
    if (error instanceof RequestError && error.isNoResponders()) {
      throw new FleetError(
        "failure",
        `NATS has no "${ROLLOUT_ACTIONS_STREAM}" stream to keep the ${request.verb}: the ` +
          `operator creates it when it starts; is it running?`,
        { cause: error },
      );
    }
    throw error;
  }
}
