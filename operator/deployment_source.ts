/**
 * Where Deployments come from and where their status goes: the `nats` source (KV buckets,
 * no Kubernetes) and the `kube` source (CRDs). The operator's logic is the same for both.
 * And where the device registry is mirrored, if anywhere.
 * @module
 */
import type {
  DeploymentRef,
  DeploymentStatus,
  DeviceInfo,
  InstanceConflict,
  StoredDeployment,
} from "../core/mod.ts";
import type { DeploymentMap } from "./deployment_map.ts";

/**
 * A deployment added or changed, deleted, refused, or the end of the first complete read.
 * `refused`: the source holds a generation of the deployment that core's validation refuses
 * (kube: a CR applied with kubectl; the CRD schema cannot express every rule); the operator
 * keeps what it had for it. The source tells whoever applied it (kube: condition Accepted).
 */
export type SourceEvent =
  | { type: "upsert"; deployment: StoredDeployment }
  | { type: "delete"; ref: DeploymentRef }
  | { type: "refused"; ref: DeploymentRef; generation: number }
  /** Every deployment that existed at start has been delivered. */
  | { type: "ready" };

/** Deployments in, statuses out: the port both the nats and the kube source implement. */
export interface DeploymentSource {
  /** For logs: "nats" or "kube". */
  readonly kind: string;
  /** Deployments as they are at start, then every change, until `signal` aborts. */
  events(signal: AbortSignal): AsyncIterable<SourceEvent>;
  /** Status as it was stored before this operator started, so unchanged values are not rewritten. */
  loadStatuses(signal: AbortSignal): Promise<DeploymentMap<DeploymentStatus>>;
  writeStatus(status: DeploymentStatus): Promise<void>;
  /**
   * Called once a deleted deployment's desired state is gone from every device: the source
   * lets the deployment go (nats: its status key; kube: the finalizer).
   */
  release(ref: DeploymentRef): Promise<void>;
}

/**
 * Where the operator mirrors the device registry, if anywhere (kube: Device objects).
 * Calls are fire-and-forget; the sink retries on its own.
 */
export interface DeviceSink {
  /** A device's info is new or changed. */
  deviceChanged(info: DeviceInfo): void;
  /**
   * A device crossed the heartbeat staleness line (either way), or was seen for the first
   * time. `lastSeenMs` is on the control plane's clock, never the device's.
   */
  reachabilityChanged(deviceId: string, reachable: boolean, lastSeenMs: number | undefined): void;
  deviceRemoved(deviceId: string): void;
  /** Two or more agents run as the device (a conflict), or no longer do (undefined). */
  agentConflictChanged(deviceId: string, conflict: InstanceConflict | undefined): void;
}
