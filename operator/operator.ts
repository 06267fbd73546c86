/**
 * The operator: matches Deployments to devices, writes only the desired-state diff, and
 * folds device reports into each Deployment's aggregate. It writes nothing until it has
 * read every bucket once, so a restart converges without rewriting unchanged keys.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import {
  type Aggregate,
  aggregateEquals,
  type BucketName,
  Buckets,
  DEFAULT_STALE_AFTER_MS,
  DeploymentState,
  type DeploymentStatus,
  DesiredState,
  desiredStateOf,
  DeviceInfo,
  diffTargets,
  Heartbeat,
  keys,
  type Labels,
  matchesSelector,
  parseJsonWith,
  parseKey,
  refKey,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import {
  ensureBucket,
  ensureBucketRetrying,
  watchBucket,
  type WatchEvent,
} from "../adapters/nats/mod.ts";
import type { DeploymentSource, DeviceSink } from "./deployment_source.ts";
import { FleetView } from "./fleet_view.ts";

export interface OperatorOptions {
  nc: NatsConnection;
  source: DeploymentSource;
  log: Logger;
  /** Bucket replicas: 1 on one server, 3 on a cluster. */
  replicas: number;
  staleAfterMs?: number;
  /** Aggregates are flushed at most this often per deployment. */
  flushIntervalMs?: number;
  /** How often the buckets are checked for existence (self-healing after broker data loss). */
  auditIntervalMs?: number;
  /** Idle heartbeat of the bucket watches: a wiped bucket is noticed after two missed ones. */
  watchHeartbeatMs?: number;
  /** Mirror of the device registry (the kube source's Device objects). */
  deviceSink?: DeviceSink;
  now?: () => number;
}

/** Counters for tests, logs and the bench. */
export interface OperatorStats {
  desiredPuts: number;
  desiredDeletes: number;
  statusWrites: number;
  writeErrors: number;
  bucketsRecreated: number;
}

const BUCKET_HISTORY: Record<BucketName, number> = {
  [Buckets.desiredState]: 3,
  [Buckets.deviceInfo]: 1,
  [Buckets.deviceState]: 3,
  [Buckets.deviceHeartbeat]: 1,
  [Buckets.deployments]: 5,
  [Buckets.deploymentStatus]: 1,
};

const WRITE_BATCH = 256;

export class Operator {
  readonly view = new FleetView();
  readonly stats: OperatorStats = {
    desiredPuts: 0,
    desiredDeletes: 0,
    statusWrites: 0,
    writeErrors: 0,
    bucketsRecreated: 0,
  };
  readonly #o: Required<Omit<OperatorOptions, "now" | "deviceSink">> & {
    now: () => number;
    deviceSink: DeviceSink | undefined;
  };
  readonly #log: Logger;
  #desiredKv: KV | undefined;
  /** Inputs read once; the first sync waits for all of them. */
  readonly #pendingReads = new Set<string>([
    "source",
    Buckets.desiredState,
    Buckets.deviceInfo,
    Buckets.deviceState,
    Buckets.deviceHeartbeat,
  ]);
  readonly #dirtyTargets = new Set<string>();
  readonly #dirtyAggregates = new Set<string>();
  /** refKey → status last written (or found at start). */
  #written = new Map<string, DeploymentStatus>();
  /** Deleted deployments the source has not released yet. */
  readonly #deleting = new Set<string>();
  /** refKey → monotonic ms of its last status write. */
  readonly #flushedAt = new Map<string, number>();
  /** Devices currently considered unreachable. */
  readonly #stale = new Set<string>();
  /** Keys delivered since the current read of desired-state began, to rebuild after a wiped bucket. */
  #desiredSeen = new Set<string>();
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #syncing: Promise<void> | undefined;
  #resync = false;
  #readyResolve: (() => void) | undefined;
  /** Resolves once every input was read and the first sync ran. */
  readonly ready: Promise<void>;

  constructor(options: OperatorOptions) {
    this.#o = {
      staleAfterMs: DEFAULT_STALE_AFTER_MS,
      flushIntervalMs: 1000,
      auditIntervalMs: 10_000,
      watchHeartbeatMs: 5_000,
      now: Date.now,
      ...options,
      deviceSink: options.deviceSink,
    };
    this.#log = options.log;
    this.ready = new Promise((resolve) => this.#readyResolve = resolve);
  }

  async run(signal: AbortSignal): Promise<void> {
    const { nc, replicas } = this.#o;
    this.#log.info(`Fleet operator starting (deployment source: ${this.#o.source.kind})`);
    for (const bucket of Object.values(Buckets)) {
      const kv = await ensureBucketRetrying(
        nc,
        bucket,
        { replicas, history: BUCKET_HISTORY[bucket] },
        { signal, logger: this.#log },
      );
      if (!kv) return;
      if (bucket === Buckets.desiredState) this.#desiredKv = kv;
    }
    this.#written = await this.#o.source.loadStatuses(signal);

    const tasks = [
      this.#follow(Buckets.desiredState, signal, (e) => this.#onDesired(e)),
      this.#follow(Buckets.deviceInfo, signal, (e) => this.#onDeviceInfo(e)),
      this.#follow(Buckets.deviceState, signal, (e) => this.#onDeviceState(e)),
      this.#follow(Buckets.deviceHeartbeat, signal, (e) => this.#onHeartbeat(e)),
      this.#followSource(signal),
      // Ticks faster than the per-deployment limit, so a first change goes out at once.
      every(Math.max(50, this.#o.flushIntervalMs / 10), signal, () => this.#flush()),
      every(this.#o.flushIntervalMs, signal, () => this.#scanStaleness()),
      every(this.#o.auditIntervalMs, signal, () => this.#audit()),
    ];
    await Promise.all(tasks);
    clearTimeout(this.#syncTimer);
    await this.#syncing;
  }

  async #follow(
    bucket: BucketName,
    signal: AbortSignal,
    handle: (e: WatchEvent) => void,
  ): Promise<void> {
    const watch = {
      nc: this.#o.nc,
      bucket,
      logger: this.#log,
      signal,
      idleHeartbeatMs: this.#o.watchHeartbeatMs,
      // Only what the new read delivers counts when rebuilding after a wiped bucket.
      onRestart: () => {
        if (bucket === Buckets.desiredState) this.#desiredSeen = new Set();
      },
    };
    for await (const event of watchBucket(watch)) {
      if (event.type === "ready") {
        this.#readDone(bucket, event.restarted);
        continue;
      }
      handle(event);
    }
  }

  async #followSource(signal: AbortSignal): Promise<void> {
    for await (const event of this.#o.source.events(signal)) {
      switch (event.type) {
        case "ready":
          this.#readDone("source", false);
          break;
        case "upsert": {
          const ref = FleetView.key(event.deployment);
          const previous = this.view.deployments.get(ref);
          this.view.deployments.set(ref, event.deployment);
          if (!previous) this.#log.info(`Deployment ${ref.replace(".", "/")} added`);
          else if (previous.metadata.generation !== event.deployment.metadata.generation) {
            this.#log.info(`Deployment ${ref.replace(".", "/")} changed`, {
              generation: event.deployment.metadata.generation,
            });
          }
          this.#markTargets(ref);
          break;
        }
        case "delete": {
          const ref = refKey(event.ref);
          this.#deleting.add(ref);
          if (this.view.deployments.delete(ref)) {
            this.#log.info(`Deployment ${ref.replace(".", "/")} deleted`);
          }
          this.#markTargets(ref);
          break;
        }
      }
    }
  }

  #readDone(input: string, restarted: boolean): void {
    if (input === Buckets.desiredState) {
      // After a wiped bucket the read is the truth: forget keys it no longer holds.
      if (restarted) {
        for (const [ref, devices] of this.view.desired) {
          for (const deviceId of devices.keys()) {
            if (!this.#desiredSeen.has(`${deviceId}.${ref}`)) {
              this.view.setDesired(ref, deviceId, undefined);
            }
          }
        }
        for (const ref of this.view.deployments.keys()) this.#markTargets(ref);
      }
    }
    if (restarted) {
      this.#log.info(`Re-read the "${input}" bucket after it came back`);
      return;
    }
    if (!this.#pendingReads.delete(input) || this.#pendingReads.size > 0) return;
    // First complete picture: reconcile every deployment and every leftover desired key.
    for (const ref of this.view.deployments.keys()) this.#markTargets(ref);
    for (const ref of this.view.desired.keys()) this.#markTargets(ref);
    for (const ref of this.#written.keys()) this.#markTargets(ref);
    for (const deviceId of this.view.devices.keys()) this.#reportReachability(deviceId);
    this.#log.info("Read the fleet's current state", {
      deployments: this.view.deployments.size,
      devices: this.view.devices.size,
    });
    void this.#sync().then(() => this.#readyResolve?.());
  }

  #onDesired(event: WatchEvent): void {
    if (event.type === "ready") return;
    const parsed = parseKey.desiredState(event.key);
    if (!parsed) return;
    const ref = refKey(parsed.ref);
    this.#desiredSeen.add(event.key);
    if (event.type === "delete") {
      this.view.setDesired(ref, parsed.deviceId, undefined);
      return;
    }
    try {
      this.view.setDesired(
        ref,
        parsed.deviceId,
        parseJsonWith(DesiredState, event.value, "desired state"),
      );
    } catch {
      // A malformed value (written by someone else) differs from anything we want: rewrite it.
      this.view.setDesired(ref, parsed.deviceId, undefined);
      this.#markTargets(ref);
    }
  }

  #onDeviceInfo(event: WatchEvent): void {
    if (event.type === "ready") return;
    const deviceId = parseKey.deviceInfo(event.key);
    if (!deviceId) return;
    if (event.type === "delete") {
      if (this.view.removeDevice(deviceId)) {
        this.#o.deviceSink?.deviceRemoved(deviceId);
        this.#log.info(`Device ${deviceId} was removed from the registry`);
        this.#markMembershipChanges(deviceId, undefined);
      }
      return;
    }
    let info: DeviceInfo;
    try {
      info = parseJsonWith(DeviceInfo, event.value, `device info of ${deviceId}`);
    } catch (error) {
      this.#log.warn(`Ignoring unreadable device info: ${(error as Error).message}`);
      return;
    }
    if (info.deviceId !== deviceId) {
      this.#log.warn(`Ignoring device info at "${event.key}": it names device "${info.deviceId}"`);
      return;
    }
    const isNew = !this.view.devices.has(deviceId);
    this.#o.deviceSink?.deviceChanged(info);
    // Staleness is reported on transitions; a new device's first state is one. At cold
    // start it waits until the heartbeats are read too (see #readDone). A device that just
    // wrote its info is alive: counting that as seen keeps a device whose info arrives
    // before its first heartbeat from showing unreachable for a moment.
    if (isNew && this.#pendingReads.size === 0) {
      if (!this.view.lastSeen.has(deviceId)) this.view.lastSeen.set(deviceId, this.#o.now());
      this.#reportReachability(deviceId);
    }
    if (this.view.setDevice(deviceId, info.labels)) {
      if (this.#pendingReads.size === 0) {
        this.#log.info(
          isNew ? `Device ${deviceId} joined` : `Device ${deviceId} changed its labels`,
        );
      }
      this.#markMembershipChanges(deviceId, info.labels);
    }
  }

  #onDeviceState(event: WatchEvent): void {
    if (event.type === "ready") return;
    const parsed = parseKey.deviceState(event.key);
    if (!parsed) return;
    const ref = refKey(parsed.ref);
    if (event.type === "delete") {
      this.view.setState(undefined, ref, parsed.deviceId);
    } else {
      try {
        const state = parseJsonWith(
          DeploymentState,
          event.value,
          `state reported by ${parsed.deviceId}`,
        );
        this.view.setState(state, ref, parsed.deviceId);
      } catch (error) {
        this.#log.warn(`Ignoring an unreadable report: ${(error as Error).message}`);
        return;
      }
    }
    this.#dirtyAggregates.add(ref);
  }

  #onHeartbeat(event: WatchEvent): void {
    if (event.type !== "put") return;
    const deviceId = parseKey.heartbeat(event.key);
    if (!deviceId) return;
    try {
      const hb = parseJsonWith(Heartbeat, event.value, `heartbeat of ${deviceId}`);
      this.view.lastSeen.set(deviceId, hb.at);
    } catch (error) {
      this.#log.warn(`Ignoring an unreadable heartbeat: ${(error as Error).message}`);
      return;
    }
    this.#checkStaleness(deviceId);
  }

  /** Tells the device sink whether a device is reachable now, and remembers it. */
  #reportReachability(deviceId: string): void {
    const seen = this.view.lastSeen.get(deviceId);
    const stale = seen === undefined || this.#o.now() - seen > this.#o.staleAfterMs;
    if (stale) this.#stale.add(deviceId);
    else this.#stale.delete(deviceId);
    this.#o.deviceSink?.reachabilityChanged(deviceId, !stale, seen);
  }

  /** Marks a device's deployments when it crosses the staleness line, either way. */
  #checkStaleness(deviceId: string): void {
    const seen = this.view.lastSeen.get(deviceId);
    const stale = seen === undefined || this.#o.now() - seen > this.#o.staleAfterMs;
    if (stale === this.#stale.has(deviceId)) return;
    if (stale) this.#stale.add(deviceId);
    else this.#stale.delete(deviceId);
    if (this.view.devices.has(deviceId) && this.#pendingReads.size === 0) {
      this.#o.deviceSink?.reachabilityChanged(deviceId, !stale, seen);
    }
    if (this.#pendingReads.size === 0) {
      this.#log.info(
        stale ? `Device ${deviceId} stopped sending heartbeats` : `Device ${deviceId} is reachable`,
      );
    }
    for (const ref of this.view.deploymentsTargeting(deviceId)) this.#dirtyAggregates.add(ref);
  }

  /**
   * Marks only the deployments whose targets gain or lose the device: O(deployments) per
   * label change instead of re-selecting the whole fleet for every deployment. Before the
   * first complete read nothing is marked: #readDone marks every deployment then.
   */
  #markMembershipChanges(deviceId: string, labels: Labels | undefined): void {
    if (this.#pendingReads.size > 0) return;
    for (const [ref, deployment] of this.view.deployments) {
      const targets = this.view.targets.get(ref);
      const matches = labels !== undefined &&
        matchesSelector(deployment.spec.targetSelector, labels);
      if (targets === undefined || targets.has(deviceId) !== matches) this.#markTargets(ref);
    }
  }

  #markTargets(ref: string): void {
    this.#dirtyTargets.add(ref);
    this.#dirtyAggregates.add(ref);
    if (this.#pendingReads.size > 0 || this.#syncTimer !== undefined) return;
    // Batch the burst of events one change causes into one sync.
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      void this.#sync();
    }, 10);
  }

  /** Writes the desired-state diff of every deployment marked dirty. One sync at a time. */
  #sync(): Promise<void> {
    if (this.#syncing) {
      this.#resync = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#resync = false;
        const refs = [...this.#dirtyTargets];
        this.#dirtyTargets.clear();
        for (const ref of refs) await this.#syncDeployment(ref);
      } while (this.#resync || this.#dirtyTargets.size > 0);
    })().finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  async #syncDeployment(ref: string): Promise<void> {
    const kv = this.#desiredKv!;
    const deployment = this.view.deployments.get(ref);
    const targets = this.view.resolveTargets(ref);
    const wanted = deployment ? desiredStateOf(deployment) : undefined;
    const current = this.view.desired.get(ref) ?? new Map<string, DesiredState>();
    const diff = diffTargets(current, targets, wanted);
    const deploymentRef = parseKey.deployment(ref)!;
    let failed = false;
    const run = async (deviceId: string, put: boolean) => {
      const key = keys.desiredState(deviceId, deploymentRef);
      try {
        if (put) {
          await kv.put(key, JSON.stringify(wanted));
          this.view.setDesired(ref, deviceId, wanted);
          this.stats.desiredPuts++;
        } else {
          await kv.delete(key);
          this.view.setDesired(ref, deviceId, undefined);
          this.stats.desiredDeletes++;
        }
      } catch (error) {
        failed = true;
        this.stats.writeErrors++;
        this.#log.warn(
          `Could not update desired state "${key}": ${(error as Error).message}; will retry`,
        );
      }
    };
    const work = [
      ...diff.put.map((d) => () => run(d, true)),
      ...diff.remove.map((d) => () => run(d, false)),
    ];
    for (let i = 0; i < work.length; i += WRITE_BATCH) {
      await Promise.all(work.slice(i, i + WRITE_BATCH).map((w) => w()));
    }
    if (work.length > 0) {
      this.#log.info(`Desired state of ${ref.replace(".", "/")} updated`, {
        added: diff.put.length,
        removed: diff.remove.length,
      });
    }
    if (failed) {
      this.#dirtyTargets.add(ref);
      return;
    }
    this.#dirtyAggregates.add(ref);
    if (!deployment && (this.#deleting.has(ref) || this.#written.has(ref))) {
      try {
        await this.#o.source.release(deploymentRef);
        this.#written.delete(ref);
        this.#deleting.delete(ref);
      } catch (error) {
        this.#dirtyTargets.add(ref);
        this.#log.warn(
          `Could not finish deleting ${ref.replace(".", "/")}: ${
            (error as Error).message
          }; will retry`,
        );
      }
    }
  }

  /** Heartbeats age without events: look for devices that crossed the line. */
  #scanStaleness(): void {
    if (this.#pendingReads.size > 0) return;
    for (const deviceId of this.view.devices.keys()) this.#checkStaleness(deviceId);
  }

  /** Writes changed aggregates, each deployment at most once per flush interval. */
  async #flush(): Promise<void> {
    if (this.#pendingReads.size > 0) return;
    const now = this.#o.now();
    // Spacing uses a monotonic clock: the injected `now` is for heartbeat ages only.
    const tick = performance.now();
    const refs = [...this.#dirtyAggregates].filter((ref) =>
      tick - (this.#flushedAt.get(ref) ?? -Infinity) >= this.#o.flushIntervalMs
    );
    for (const ref of refs) this.#dirtyAggregates.delete(ref);
    await Promise.all(refs.map(async (ref) => {
      const deployment = this.view.deployments.get(ref);
      // Not yet synced: the targets (and so the aggregate) would be out of date.
      if (!deployment || this.#dirtyTargets.has(ref)) {
        if (deployment) this.#dirtyAggregates.add(ref);
        return;
      }
      const aggregate = this.view.aggregate(ref, now, this.#o.staleAfterMs) as Aggregate;
      const previous = this.#written.get(ref);
      const generation = deployment.metadata.generation;
      if (
        previous && previous.observedGeneration === generation &&
        aggregateEquals(previous.aggregate, aggregate)
      ) return;
      const status: DeploymentStatus = {
        namespace: deployment.metadata.namespace,
        name: deployment.metadata.name,
        observedGeneration: generation,
        aggregate,
        updatedAt: new Date(now).toISOString(),
      };
      this.#flushedAt.set(ref, tick);
      try {
        await this.#o.source.writeStatus(status);
        this.#written.set(ref, status);
        this.stats.statusWrites++;
      } catch (error) {
        this.stats.writeErrors++;
        this.#dirtyAggregates.add(ref);
        this.#log.warn(`Could not write the status of ${ref}: ${(error as Error).message}`);
      }
    }));
  }

  /** Recreates buckets that vanished (broker data loss); their owners refill them. */
  async #audit(): Promise<void> {
    let jsm;
    try {
      jsm = await jetstreamManager(this.#o.nc);
    } catch {
      return; // Not connected; the connection logs that.
    }
    for (const bucket of Object.values(Buckets)) {
      try {
        await jsm.streams.info(`KV_${bucket}`);
      } catch (error) {
        if (!/stream not found/i.test((error as Error).message)) continue;
        this.#log.warn(`The "${bucket}" bucket is missing from NATS; recreating it`);
        try {
          const kv = await ensureBucket(this.#o.nc, bucket, {
            replicas: this.#o.replicas,
            history: BUCKET_HISTORY[bucket],
          });
          if (bucket === Buckets.desiredState) this.#desiredKv = kv;
          if (bucket === Buckets.deploymentStatus) {
            // Every status must be written again, whether or not it changed.
            this.#written.clear();
            for (const ref of this.view.deployments.keys()) this.#dirtyAggregates.add(ref);
          }
          this.stats.bucketsRecreated++;
        } catch (createError) {
          this.#log.warn(
            `Could not recreate the "${bucket}" bucket: ${(createError as Error).message}`,
          );
        }
      }
    }
  }
}
