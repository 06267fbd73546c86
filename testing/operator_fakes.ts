/**
 * In-memory stand-ins for the operator's ports, for tests of its controllers on a fake
 * clock: a desired-state store that can deny writes, a deployment source that records what
 * it is told, and a device sink that records reachability.
 */
import type {
  Clock,
  DeploymentRef,
  DeploymentStatus,
  DesiredState,
  DeviceInfo,
  InstanceConflict,
  LabelSelector,
  StoredDeployment,
} from "../core/mod.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import type { DeploymentSource, DeviceSink, SourceEvent } from "../operator/deployment_source.ts";
import { DeploymentMap } from "../operator/deployment_map.ts";
import type { DesiredStateEvent, DesiredStateStore } from "../operator/desired_state_store.ts";
import type { AgentConflictStore } from "../operator/agent_conflict_store.ts";

/** A deployment as a source delivers it (generation 1). */
export function storedDeployment(
  name: string,
  selector: LabelSelector,
  image = "localhost/web:1",
): StoredDeployment {
  const d = singleServiceDeployment({ name, image, selector });
  return { ...d, metadata: { ...d.metadata, generation: 1 } };
}

/** What a NATS permission denial looks like to the operator. */
export class DeniedError extends Error {
  override name = "DeniedError";
}

/** Desired state in a Map; `deny` makes every write fail, as a missing permission does. */
export class MemoryDesiredStateStore implements DesiredStateStore {
  readonly values = new Map<string, DesiredState>();
  /** Monotonic time of every write attempt, per `<deviceId>.<namespace>.<name>`. */
  readonly attempts = new Map<string, number[]>();
  deny = false;
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  put(deviceId: string, ref: DeploymentRef, value: DesiredState): Promise<void> {
    return this.#write(deviceId, ref, () => this.values.set(key(deviceId, ref), value));
  }

  delete(deviceId: string, ref: DeploymentRef): Promise<void> {
    return this.#write(deviceId, ref, () => this.values.delete(key(deviceId, ref)));
  }

  /** Not followed by the controller tests: they set the view directly. */
  async *watch(_signal: AbortSignal): AsyncIterable<DesiredStateEvent> {
    yield { type: "ready", restarted: false };
  }

  #write(deviceId: string, ref: DeploymentRef, apply: () => void): Promise<void> {
    const k = key(deviceId, ref);
    this.attempts.set(k, [...this.attempts.get(k) ?? [], this.#clock.monotonic()]);
    if (this.deny) {
      return Promise.reject(new DeniedError(`Permissions Violation for Publish to "${k}"`));
    }
    apply();
    return Promise.resolve();
  }
}

function key(deviceId: string, ref: DeploymentRef): string {
  return `${deviceId}.${ref.namespace}.${ref.name}`;
}

/** A source with no deployments of its own that records the statuses and releases it gets. */
export class RecordingSource implements DeploymentSource {
  readonly kind = "memory";
  /** Each status written, with the monotonic time of the write. */
  readonly writes: { status: DeploymentStatus; at: number }[] = [];
  readonly released: DeploymentRef[] = [];
  failWrites = false;
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  async *events(_signal: AbortSignal): AsyncIterable<SourceEvent> {
    yield { type: "ready" };
  }

  loadStatuses(_signal: AbortSignal): Promise<DeploymentMap<DeploymentStatus>> {
    return Promise.resolve(new DeploymentMap());
  }

  writeStatus(status: DeploymentStatus): Promise<void> {
    this.writes.push({ status, at: this.#clock.monotonic() });
    return this.failWrites ? Promise.reject(new DeniedError("status denied")) : Promise.resolve();
  }

  release(ref: DeploymentRef): Promise<void> {
    this.released.push(ref);
    return Promise.resolve();
  }
}

/** A device sink that keeps every call as a line: `<id> reachable|unreachable <lastSeen>`. */
export class RecordingDeviceSink implements DeviceSink {
  readonly calls: string[] = [];
  /** The last `lastSeenMs` given per device. */
  readonly lastSeen = new Map<string, number | undefined>();

  deviceChanged(info: DeviceInfo): void {
    this.calls.push(`${info.deviceId} changed`);
  }

  reachabilityChanged(deviceId: string, reachable: boolean, lastSeenMs: number | undefined): void {
    this.lastSeen.set(deviceId, lastSeenMs);
    this.calls.push(`${deviceId} ${reachable ? "reachable" : "unreachable"}`);
  }

  deviceRemoved(deviceId: string): void {
    this.calls.push(`${deviceId} removed`);
  }

  agentConflictChanged(deviceId: string, conflict: InstanceConflict | undefined): void {
    this.calls.push(
      conflict
        ? `${deviceId} conflict: ${conflict.owner} keeps, ${conflict.standby.join(",")} stand by`
        : `${deviceId} conflict over`,
    );
  }

  /** The reachability calls of one device, in order: `reachable` or `unreachable` each. */
  history(deviceId: string): string[] {
    return this.calls
      .filter((c) => c.startsWith(`${deviceId} `) && c.endsWith("reachable"))
      .map((c) => c.slice(deviceId.length + 1));
  }
}

/** An agent-conflict store in memory, failing writes while `failing` is set. */
export class MemoryAgentConflictStore implements AgentConflictStore {
  readonly stored = new Map<string, InstanceConflict>();
  writes = 0;
  failing = false;

  load(): Promise<Map<string, InstanceConflict>> {
    return Promise.resolve(new Map(this.stored));
  }

  put(conflict: InstanceConflict): Promise<void> {
    if (this.failing) return Promise.reject(new Error("store unavailable"));
    this.writes++;
    this.stored.set(conflict.deviceId, conflict);
    return Promise.resolve();
  }

  delete(deviceId: string): Promise<void> {
    if (this.failing) return Promise.reject(new Error("store unavailable"));
    this.writes++;
    this.stored.delete(deviceId);
    return Promise.resolve();
  }
}
