/**
 * `fleet apply` looks ahead at host ports: the operator does not write a deployment to a
 * device where another deployment already takes one of its host ports (core/conflicts.ts),
 * so apply says so before it happens, from the deployments and devices the store can read.
 * It warns and applies all the same.
 * @module
 */
import {
  type Deployment,
  foreseePortConflicts,
  formatHostPort,
  publishedPorts,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { DeploymentRow, DeviceRow, FleetStore } from "./nats_store.ts";

/** Devices named in one warning; the rest are counted. */
const NAMED_DEVICES = 5;

/** One line per port and holder where the store's view says `deployment` will be refused. */
export function portConflictWarnings(
  deployment: Deployment,
  deployments: readonly DeploymentRow[],
  devices: readonly DeviceRow[],
): string[] {
  const conflicts = foreseePortConflicts(
    deployment,
    // A refused one is not what its devices run (they keep an earlier generation, unknown here).
    deployments.flatMap(({ deployment: d, refused }) =>
      d.spec === undefined || refused !== undefined ? [] : [d]
    ),
    devices.map((row) => [row.info.deviceId, row.labels] as const),
  );
  const { namespace, name } = deployment.metadata;
  return conflicts.map(({ port, by, devices }) => {
    const named = devices.slice(0, NAMED_DEVICES).join(", ");
    const more = devices.length > NAMED_DEVICES
      ? `, and ${devices.length - NAMED_DEVICES} more`
      : "";
    return `port ${
      formatHostPort(port)
    } is already used by deployment ${by.namespace}/${by.name} ` +
      `on ${devices.length} device(s) (${named}${more}); deployment ${namespace}/${name} ` +
      `will be Failed there`;
  });
}

/**
 * Warns on the log of every conflict {@link portConflictWarnings} sees. A deployment with no
 * host port costs no read; a read that fails is a warning too, never a reason not to apply.
 */
export async function warnOfPortConflicts(
  store: FleetStore,
  deployment: Deployment,
  log: Logger,
): Promise<void> {
  if (publishedPorts(deployment.spec.score).length === 0) return;
  let lines: string[];
  try {
    const [deployments, devices] = await Promise.all([store.deployments(), store.devices()]);
    lines = portConflictWarnings(deployment, deployments, devices);
  } catch (error) {
    log.warn(`Could not check the host ports of the fleet: ${(error as Error).message}`);
    return;
  }
  for (const line of lines) log.warn(line);
}
