/**
 * The operator as a manager of small controllers over ports (controller-runtime's shape):
 * {@link createOperator} builds the adapters for the chosen deployment source, the shared
 * {@link FleetView} and the controllers, and routes what each port delivers to the
 * controller whose job it is:
 *
 * - targeting (`targeting_writer.ts`): selectors → the desired-state diff;
 * - aggregation (`aggregate_flusher.ts`): reports → each deployment's status;
 * - devices (`device_mirror.ts`): registry (labels from the label registry), liveness, the
 *   Device mirror;
 * - agents (`instance_arbiter.ts`): which agent keeps a device two agents run as;
 * - buckets (`bucket_auditor.ts`): re-creates what broker data loss took;
 * - device consumers (`device_consumers.ts`): the one consumer each device reads from;
 * - revisions (`revision_recorder.ts`): each deployment's last workloads;
 * - rollouts (`rollout_controller.ts`): which revision each device of a progressive
 *   deployment gets, batch by batch.
 *
 * It writes nothing until it has read every input once, so a restart converges without
 * rewriting unchanged keys.
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type BackoffPolicy, Buckets, type Clock, DEFAULT_STALE_AFTER_MS } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import type { KubeClient } from "../adapters/kube/mod.ts";
import { AggregateFlusher } from "./aggregate_flusher.ts";
import { BucketAuditor } from "./bucket_auditor.ts";
import type { BucketKeeper } from "./bucket_keeper.ts";
import type { DeploymentSource, DeviceSink } from "./deployment_source.ts";
import type { DesiredStateStore } from "./desired_state_store.ts";
import { DeviceConsumerKeeper, type DeviceConsumerStore } from "./device_consumers.ts";
import { RevisionRecorder } from "./revision_recorder.ts";
import type { RevisionStore } from "./revision_store.ts";
import { NatsRevisions } from "./nats_revisions.ts";
import type { PopulationStore } from "./population_store.ts";
import type { RolloutActionFeed } from "./rollout_action_feed.ts";
import { NatsRolloutActions } from "./nats_rollout_actions.ts";
import { RolloutController } from "./rollout_controller.ts";
import { NatsDeviceConsumers } from "./nats_device_consumers.ts";
import { DeviceMirror } from "./device_mirror.ts";
import { FleetView } from "./fleet_view.ts";
import { InitialRead } from "./initial_read.ts";
import { InstanceArbiter } from "./instance_arbiter.ts";
import type { AgentConflictStore } from "./agent_conflict_store.ts";
import { NatsAgentConflictStore } from "./nats_agent_conflicts.ts";
import { KubeDeviceSink } from "./kube_devices.ts";
import { KubeDeploymentSource } from "./kube_source.ts";
import { KubeNamespaceBindings } from "./kube_namespace_bindings.ts";
import type { NamespaceBindings } from "./namespace_bindings.ts";
import { NatsNamespaceBindings } from "./nats_namespace_bindings.ts";
import { KubeLabelRegistry } from "./kube_label_registry.ts";
import type { LabelRegistry } from "./label_registry.ts";
import { NatsLabelRegistry } from "./nats_label_registry.ts";
import { NatsBucketKeeper } from "./nats_bucket_keeper.ts";
import { NatsDesiredStateStore } from "./nats_desired_state.ts";
import { NatsReportFeed } from "./nats_report_feed.ts";
import { NatsDeploymentSource } from "./nats_source.ts";
import { type OperatorStats, type ReconcileObserver, zeroStats } from "./operator_stats.ts";
import type { ReportFeed } from "./report_feed.ts";
import { TargetingWriter } from "./targeting_writer.ts";

/** Where Deployments live: NATS KV (no Kubernetes), or Deployment custom resources. */
export type OperatorSource = { kind: "nats" } | { kind: "kube"; client: KubeClient };

/** Options of {@link createOperator}. */
export interface OperatorOptions {
  /** Desired state, device reports and the buckets (and, for the nats source, deployments). */
  nc: NatsConnection;
  log: Logger;
  /** Bucket replicas: 1 on one server, 3 on a cluster. */
  replicas: number;
  /**
   * With `kube`, devices are mirrored as Device objects too.
   * @default { kind: "nats" }
   */
  source?: OperatorSource;
  /** Every timer and every age the operator judges. @default systemClock */
  clock?: Clock;
  /** A device silent for longer is unreachable. @default 90000 */
  staleAfterMs?: number;
  /** Aggregates are flushed at most this often per deployment. @default 1000 */
  flushIntervalMs?: number;
  /** How often the buckets are checked for existence (self-healing after broker data loss). @default 10000 */
  auditIntervalMs?: number;
  /** Idle heartbeat of the bucket watches: a wiped bucket is noticed after two missed ones. @default 5000 */
  watchHeartbeatMs?: number;
  /**
   * Idle heartbeat of each device's desired-state consumer: an agent notices a lost consumer
   * after two missed ones; every connected device gets one message per interval. @default 15000
   */
  deviceHeartbeatMs?: number;
  /** Spacing of retries after failed writes. @default DEFAULT_BACKOFF (100 ms doubling to 30 s) */
  retry?: BackoffPolicy;
  /** Where to mirror the device registry instead (the kube source's Device objects by default). */
  deviceSink?: DeviceSink;
  /**
   * A namespace no admin bound to devices may target every device, as before tenancy existed:
   * for development and the demo only. Off, such a namespace targets no device and its
   * deployments say why. @default false
   */
  allowUnboundNamespaces?: boolean;
  /** Told of each reconcile pass of the desired-state and status controllers (metrics). */
  reconciled?: ReconcileObserver;
  /** Revisions kept per deployment for history and rollback. @default DEFAULT_REVISION_HISTORY (10) */
  revisionHistory?: number;
}

/** A running or runnable operator, as {@link createOperator} returns it. */
export interface Operator {
  /** Resolves once every input was read and the first sync of desired state ran. */
  readonly ready: Promise<void>;
  /** Write counters since it was created. */
  readonly stats: OperatorStats;
  /** What it knows of the fleet. */
  readonly view: FleetView;
  /** The Device objects of a kube-source operator (for tests); undefined for the nats source. */
  readonly kubeDevices: KubeDeviceSink | undefined;
  /** The clock it judges ages by, and the silence after which a device is unreachable. */
  readonly clock: Clock;
  readonly staleAfterMs: number;
  /**
   * Runs every controller until `signal` aborts (once per operator).
   * @throws when an input cannot be followed any more (the NATS connection closed for good)
   */
  run(signal: AbortSignal): Promise<void>;
}

/** The ports of an operator: what it reads and writes. */
interface Ports {
  source: DeploymentSource;
  bindings: NamespaceBindings;
  desired: DesiredStateStore;
  reports: ReportFeed;
  registry: LabelRegistry;
  agentConflicts: AgentConflictStore;
  buckets: BucketKeeper;
  deviceConsumers: DeviceConsumerStore;
  revisions: RevisionStore;
  populations: PopulationStore;
  rolloutActions: RolloutActionFeed;
  deviceSink: DeviceSink | undefined;
  kubeDevices: KubeDeviceSink | undefined;
}

function portsFor(options: OperatorOptions, clock: Clock, log: Logger): Ports {
  const { nc, replicas } = options;
  const watch = { nc, log, clock, watchHeartbeatMs: options.watchHeartbeatMs ?? 5_000 };
  const source = options.source ?? { kind: "nats" };
  const revisions = new NatsRevisions(nc, log);
  const kubeDevices = source.kind === "kube" && !options.deviceSink
    ? new KubeDeviceSink(source.client, log, clock)
    : undefined;
  return {
    source: source.kind === "kube"
      ? new KubeDeploymentSource(source.client, log, {
        clock,
        ...(options.retry ? { retry: options.retry } : {}),
      })
      : new NatsDeploymentSource(nc, log, replicas, clock),
    bindings: source.kind === "kube"
      ? new KubeNamespaceBindings(source.client, log)
      : new NatsNamespaceBindings({ nc, log, replicas, clock }),
    desired: new NatsDesiredStateStore(watch),
    reports: new NatsReportFeed(watch),
    registry: source.kind === "kube"
      ? new KubeLabelRegistry(source.client, log)
      : new NatsLabelRegistry(watch),
    agentConflicts: new NatsAgentConflictStore(nc, log),
    buckets: new NatsBucketKeeper({ nc, log, replicas, clock }),
    deviceConsumers: new NatsDeviceConsumers({
      nc,
      log,
      heartbeatMs: options.deviceHeartbeatMs ?? 15_000,
    }),
    revisions,
    populations: revisions,
    rolloutActions: new NatsRolloutActions({ nc, log, replicas }),
    deviceSink: options.deviceSink ?? kubeDevices,
    kubeDevices,
  };
}

/** The one way to build an operator: adapters, shared view and controllers, wired. */
export function createOperator(options: OperatorOptions): Operator {
  const clock = options.clock ?? systemClock;
  const log = options.log;
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const flushIntervalMs = options.flushIntervalMs ?? 1_000;
  const retry = options.retry ? { retry: options.retry } : {};
  const ports = portsFor(options, clock, log);
  const view = new FleetView({ allowUnbound: options.allowUnboundNamespaces ?? false });
  const stats = zeroStats();
  const initialRead = new InitialRead([
    "source",
    "namespaces",
    Buckets.desiredState,
    Buckets.deviceInfo,
    Buckets.deviceState,
    Buckets.deviceHeartbeat,
    Buckets.deviceLabels,
  ]);
  const common = { view, initialRead, clock, log, stats, reconciled: options.reconciled };

  const flusher: AggregateFlusher = new AggregateFlusher({
    ...common,
    ...retry,
    source: ports.source,
    flushIntervalMs,
    staleAfterMs,
    syncPending: (ref) => targeting.isPending(ref),
  });
  const targeting = new TargetingWriter({
    ...common,
    ...retry,
    store: ports.desired,
    source: ports.source,
    aggregateChanged: (ref) => {
      flusher.markDirty(ref);
      rollouts.mark(ref);
    },
  });
  const devices = new DeviceMirror({
    ...common,
    deviceSink: ports.deviceSink,
    staleAfterMs,
    scanIntervalMs: flushIntervalMs,
    labelsChanged: (deviceId, labels) => targeting.deviceLabelsChanged(deviceId, labels),
    // A device's reachability changed: its deployments' aggregates and rollouts.
    aggregateChanged: (ref) => {
      flusher.markDirty(ref);
      rollouts.mark(ref);
    },
  });
  const arbiter = new InstanceArbiter({
    view,
    store: ports.agentConflicts,
    clock,
    log,
    staleAfterMs,
    scanIntervalMs: flushIntervalMs,
    conflictChanged: (deviceId, conflict) =>
      ports.deviceSink?.agentConflictChanged(deviceId, conflict),
  });
  const auditor = new BucketAuditor({
    keeper: ports.buckets,
    clock,
    log,
    stats,
    intervalMs: options.auditIntervalMs ?? 10_000,
    recreated: (bucket) => {
      // Every status must be written again, whether or not it changed.
      if (bucket === Buckets.deploymentStatus) flusher.rewriteAll();
    },
  });

  const revisions = new RevisionRecorder({
    store: ports.revisions,
    clock,
    log,
    ...(options.revisionHistory === undefined ? {} : { keep: options.revisionHistory }),
    ...retry,
    pinned: (ref) => {
      const rollout = view.rollouts.get(ref) ?? view.statuses.get(ref)?.rollout;
      return rollout?.stable ? [rollout.stable.number] : [];
    },
    recorded: (ref) => rollouts.mark(ref),
  });
  const rollouts: RolloutController = new RolloutController({
    view,
    populations: ports.populations,
    revisionsOf: (ref) => revisions.historyOf(ref),
    initialRead,
    clock,
    log,
    staleAfterMs,
    ...retry,
    wishesChanged: (ref) => targeting.mark(ref),
    statusChanged: (ref) => flusher.markDirty(ref),
  });

  const consumers = new DeviceConsumerKeeper({
    store: ports.deviceConsumers,
    devices: view.devices,
    complete: () => initialRead.complete,
    clock,
    log,
    intervalMs: options.auditIntervalMs ?? 10_000,
  });

  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => markReady = resolve);

  const readDone = (input: string, restarted: boolean): void => {
    if (restarted) {
      log.info(`Re-read the "${input}" bucket after it came back`);
      return;
    }
    if (!initialRead.done(input)) return;
    // Reports of deployments that do not exist go now; the others once targets are resolved.
    view.pruneStates();
    devices.reportAll();
    void consumers.audit();
    log.info("Read the fleet's current state", {
      deployments: view.deployments.size,
      devices: view.devices.size,
    });
    rollouts.start();
    targeting.start().then(markReady, (error: unknown) => {
      log.error(`The first sync of desired state failed: ${(error as Error).message}`);
    });
  };

  const run = async (signal: AbortSignal): Promise<void> => {
    log.info(`Fleet operator starting (deployment source: ${ports.source.kind})`);
    if (view.allowUnbound) {
      log.info(
        "Namespaces bound to no devices may target every device (--allow-unbound-namespaces, " +
          "for development only)",
      );
    }
    // One input failing for good stops the others too.
    const stop = new AbortController();
    const inner = AbortSignal.any([signal, stop.signal]);
    const tasks: Promise<void>[] = [];
    try {
      if (ports.kubeDevices) {
        await ports.kubeDevices.load();
        tasks.push(ports.kubeDevices.run(inner));
      }
      if (!await ports.buckets.ensureAll(inner)) return;
      await arbiter.load();
      for (const [ref, status] of await ports.source.loadStatuses(inner)) {
        view.statuses.set(ref, status);
      }
      tasks.push(
        (async () => {
          for await (const event of ports.source.events(inner)) {
            if (event.type === "ready") readDone("source", false);
            else {
              targeting.onSource(event);
              revisions.onSource(event);
            }
          }
        })(),
        (async () => {
          for await (const event of ports.bindings.events(inner)) {
            if (event.type === "ready") readDone("namespaces", false);
            else targeting.bindingChanged(event.namespace, event.binding);
          }
        })(),
        (async () => {
          for await (const event of ports.desired.watch(inner)) {
            targeting.onDesired(event);
            // A re-read after the bucket came back: the agent-conflict keys went with it.
            if (event.type === "ready" && event.restarted) arbiter.rewriteAll();
            if (event.type === "ready") readDone(Buckets.desiredState, event.restarted);
          }
        })(),
        (async () => {
          for await (const event of ports.reports.deviceInfo(inner)) {
            // Before the registry takes it in: a device it did not know gets its consumer.
            if (event.type === "put" && !view.devices.has(event.info.deviceId)) {
              consumers.deviceJoined(event.info.deviceId);
            }
            devices.onInfo(event);
            if (event.type === "delete") void consumers.deviceLeft(event.deviceId);
            if (event.type === "ready") readDone(Buckets.deviceInfo, event.restarted);
          }
        })(),
        (async () => {
          for await (const event of ports.registry.events(inner)) {
            devices.onRegistry(event);
            if (event.type === "ready") readDone(Buckets.deviceLabels, false);
          }
        })(),
        (async () => {
          for await (const event of ports.reports.deviceStates(inner)) {
            flusher.onReport(event);
            if (event.type === "put" || event.type === "delete") {
              rollouts.reported(event.ref, event.deviceId);
            }
            if (event.type === "ready") readDone(Buckets.deviceState, event.restarted);
          }
        })(),
        (async () => {
          for await (const event of ports.reports.heartbeats(inner)) {
            devices.onHeartbeat(event);
            arbiter.onHeartbeat(event);
            if (event.type === "ready") readDone(Buckets.deviceHeartbeat, event.restarted);
          }
        })(),
        (async () => {
          for await (const event of ports.rolloutActions.follow(inner)) rollouts.onAction(event);
        })(),
        flusher.run(inner),
        devices.run(inner),
        arbiter.run(inner),
        auditor.run(inner),
        consumers.run(inner),
      );
      await Promise.all(tasks);
    } finally {
      stop.abort();
      await Promise.allSettled(tasks);
      await rollouts.stop();
      await targeting.stop();
      revisions.stop();
    }
  };

  return { ready, stats, view, kubeDevices: ports.kubeDevices, clock, staleAfterMs, run };
}
