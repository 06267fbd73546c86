/**
 * The device agent: keeps this device's containers equal to its desired state and tells
 * the control plane how that goes. It works from the disk cache while NATS is away and
 * never stops a container because the control plane is unreachable.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type DeploymentState,
  deviceConsumer,
  type DeviceInfo,
  deviceLabels,
  type Heartbeat,
  parseKey,
  withSelectableLabels,
} from "../core/mod.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import { readInventory } from "../adapters/host/inventory.ts";
import {
  connectNatsInBackground,
  type CredentialSource,
  followDeviceConsumer,
  natsTlsFromConfig,
} from "../adapters/nats/mod.ts";
import { type AgentConfig, devicePolicy, labelWarnings } from "./config.ts";
import { DesiredCache } from "./desired_cache.ts";
import { DesiredView } from "./desired_view.ts";
import { Reconciler } from "./reconciler.ts";
import { Reporter, type ReportSink } from "./reporter.ts";
import type { ContainerRuntime } from "./runtime.ts";
import { NatsReportSink } from "./nats_reports.ts";
import { InstanceGuard } from "./instance_guard.ts";
import { currentAgentUser, protectedPaths, WorkloadPolicy } from "./workload_policy.ts";
import { publishAudit } from "../adapters/nats/audit.ts";
import type { AuditRecord, ReconcileResult } from "../core/device_commands.ts";
import { CommandResponder } from "./command_responder.ts";
import { commandHandlers } from "./command_handlers.ts";
import { LogSessions } from "./log_sessions.ts";
import { ExecSessions } from "./exec_sessions.ts";
import { natsSessionTransport } from "./session.ts";
import { agentJournal } from "../adapters/host/journal.ts";
import { recordingWarnings, WarningRing } from "./warnings.ts";
import { processHeap, type V8Heap } from "../adapters/v8_heap.ts";
import { type CodePages, processCodePages } from "../adapters/code_pages.ts";
import { MemoryKeeper } from "./memory_keeper.ts";

export interface AgentOptions {
  config: AgentConfig;
  credentials: CredentialSource;
  runtime: ContainerRuntime;
  log: Logger;
  version: string;
  /** Describes the container runtime in the start-up line, e.g. the podman socket. */
  runtimeDescription: string;
  /**
   * Paces the relist, heartbeat and republish loops and the desired-state feed's retries,
   * and times the orphan grace period, failure backoffs and how long containers have been
   * up; the device's own timestamps in reports come from it.
   */
  clock: Clock;
  /** The config file, named in warnings about it. @default "the agent config" */
  configPath?: string;
  /** The failure backoff's jitter, a number in [0, 1) per failure. @default Math.random */
  random?: () => number;
  /** What the {@link MemoryKeeper} compacts after a burst of work. @default processHeap */
  heap?: V8Heap;
  /** The code pages the {@link MemoryKeeper} gives back. @default processCodePages */
  code?: CodePages;
}

/** A sink that fails until NATS is connected; reports stay pending meanwhile. */
class LateSink implements ReportSink {
  target: ReportSink | undefined;
  #get(): ReportSink {
    if (!this.target) throw new Error("not connected to NATS yet");
    return this.target;
  }
  putDeviceInfo(key: string, info: DeviceInfo) {
    return this.#get().putDeviceInfo(key, info);
  }
  putState(key: string, state: DeploymentState) {
    return this.#get().putState(key, state);
  }
  deleteState(key: string) {
    return this.#get().deleteState(key);
  }
  putHeartbeat(key: string, heartbeat: Heartbeat) {
    return this.#get().putHeartbeat(key, heartbeat);
  }
}

/** Wakes a loop early; several wake-ups before it runs count as one. */
class Wakeup {
  readonly #clock: Clock;
  #resolve: (() => void) | undefined;
  #pending = false;
  constructor(clock: Clock) {
    this.#clock = clock;
  }
  wake(): void {
    this.#pending = true;
    this.#resolve?.();
  }
  /** Resolves after `ms` (at once when it is 0), on a wake-up, or when `signal` aborts. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0 || this.#pending || signal.aborted) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        signal.removeEventListener("abort", done);
        this.#resolve = undefined;
        this.#pending = false;
        resolve();
      };
      const timer = this.#clock.timer(ms, done);
      signal.addEventListener("abort", done);
      this.#resolve = done;
    });
  }
}

export class Agent {
  readonly #config: AgentConfig;
  readonly #options: AgentOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #view: DesiredView;
  readonly #cache: DesiredCache;
  readonly #reconciler: Reconciler;
  readonly #policy: WorkloadPolicy;
  readonly #sink = new LateSink();
  readonly #wakeup: Wakeup;
  readonly #guard: InstanceGuard;
  #reporter: Reporter | undefined;
  #nc: NatsConnection | undefined;
  /** The open logs sessions, once NATS is connected. */
  #sessions: (LogSessions | ExecSessions)[] = [];
  #cacheDirty = false;
  /** Passes completed, for tests and the bench. */
  passes = 0;
  /** Passes started; a `reconcile` command waits for one that starts after it asked. */
  #passesStarted = 0;
  #passWaiters: { after: number; done: (result: ReconcileResult | Error) => void }[] = [];
  readonly #warnings = new WarningRing();
  readonly #startedAt: number;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#log = recordingWarnings(options.log, this.#warnings, options.clock);
    this.#clock = options.clock;
    this.#startedAt = options.clock.monotonic();
    this.#wakeup = new Wakeup(options.clock);
    this.#guard = new InstanceGuard(options.config.device_id, options.log);
    const intervals = this.#config.intervals;
    this.#view = new DesiredView(this.#config.device_id, intervals.orphan_grace_seconds * 1000);
    this.#cache = new DesiredCache(this.#config.state_dir, this.#config.device_id, options.clock);
    this.#reconciler = new Reconciler({
      runtime: options.runtime,
      log: this.#log,
      stopTimeoutSeconds: intervals.stop_timeout_seconds,
      minReadyMs: intervals.min_ready_seconds * 1000,
      clock: options.clock,
      ...(options.random ? { random: options.random } : {}),
      onHealthcheckRun: () => this.#wakeup.wake(),
    });
    this.#policy = new WorkloadPolicy({
      policy: devicePolicy(this.#config),
      protectedPaths: protectedPaths(this.#config, options.configPath, currentAgentUser()),
      grants: (id) => options.runtime.grants(id),
    });
  }

  /** Runs until `signal` aborts; containers are left running on the way out. */
  async run(signal: AbortSignal): Promise<void> {
    const { config } = this;
    const log = this.#log;
    log.info(`Fleet agent ${this.#options.version} starting as device "${config.device_id}"`, {
      nats: config.nats.urls.join(","),
      runtime: this.#options.runtimeDescription,
      credentials: this.#options.credentials.describe(),
      instance: this.#guard.id,
    });

    for (const warning of labelWarnings(config, this.#options.configPath ?? "the agent config")) {
      log.warn(warning);
    }

    const cached = await this.#cache.load();
    if (cached.problem) log.warn(cached.problem);
    this.#view.seed(cached.values);
    if (cached.values.size > 0) {
      log.info(
        `Running ${cached.values.size} deployment(s) from the local cache until NATS answers`,
        {
          cache: this.#cache.path,
        },
      );
    }

    const info: DeviceInfo = withSelectableLabels({
      deviceId: config.device_id,
      labels: deviceLabels(config.device_id, config.labels),
      ...(config.description === undefined ? {} : { description: config.description }),
      ...(config.annotations === undefined ? {} : { annotations: config.annotations }),
      inventory: await readInventory(this.#options.version),
      updatedAt: new Date(this.#clock.now()).toISOString(),
      instance: this.#guard.id,
    });
    this.#reporter = new Reporter({
      deviceId: config.device_id,
      instance: this.#guard.id,
      info,
      sink: this.#sink,
      log,
      clock: this.#clock,
    });

    const memoryKeeper = new MemoryKeeper({
      heap: this.#options.heap ?? processHeap,
      code: this.#options.code ?? processCodePages,
      clock: this.#clock,
      log: this.#log,
    });
    memoryKeeper.start();
    const { heartbeat_seconds, republish_seconds } = config.intervals;
    const loops = [
      this.#reconcileLoop(signal),
      every(heartbeat_seconds * 1000, signal, () => this.#heartbeat(), this.#clock),
      every(republish_seconds * 1000, signal, () => {
        this.#reporter?.republishAll();
        void this.#reporter?.sync();
      }, this.#clock),
      this.#natsLoop(signal),
    ];
    try {
      await Promise.all(loops);
    } finally {
      memoryKeeper.stop();
    }
    // Whoever follows a log or runs a command hears why it ended before the connection goes.
    await Promise.all(
      this.#sessions.map((s) =>
        s.endAll("going-away", `the agent on ${config.device_id} is stopping`)
      ),
    );
    if (this.#cacheDirty) await this.#saveCache();
    await this.#nc?.close();
    log.info("Fleet agent stopped; containers keep running");
  }

  get config(): AgentConfig {
    return this.#config;
  }

  /** The reporter's current view, for tests. */
  states(): ReadonlyMap<string, DeploymentState> {
    return this.#reporter?.states() ?? new Map();
  }

  async #natsLoop(signal: AbortSignal): Promise<void> {
    const config = this.#config;
    const nc = await connectNatsInBackground({
      servers: config.nats.urls,
      tls: natsTlsFromConfig(config.nats),
      credentials: this.#options.credentials,
      name: `fleet-agent-${config.device_id}`,
      logger: this.#log,
      signal,
    });
    if (!nc) return;
    this.#nc = nc;
    this.#sink.target = await NatsReportSink.open(nc);
    const responder = this.#answerCommands(nc);
    signal.addEventListener("abort", () => responder.stop());
    void this.#reporter?.sync();
    void this.#heartbeat();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "reconnect") {
          this.#reporter?.republishAll();
          void this.#reporter?.sync();
        }
      }
    })();

    // The consumer the operator prepared for this device: it cannot make one of its own.
    for await (
      const event of followDeviceConsumer({
        nc,
        consumer: deviceConsumer(config.device_id),
        logger: this.#log,
        signal,
        onRestart: () => this.#view.readStarted(),
        clock: this.#clock,
      })
    ) {
      if (event.type !== "ready" && parseKey.agentConflict(event.key) === config.device_id) {
        this.#onConflictDecision(
          event.type === "put" ? new TextDecoder().decode(event.value) : undefined,
        );
        continue;
      }
      switch (event.type) {
        case "put": {
          const problem = this.#view.put(event.key, new TextDecoder().decode(event.value));
          if (problem) {
            this.#log.warn(`Ignoring desired-state key "${problem.key}": ${problem.reason}`);
          }
          break;
        }
        case "delete":
          this.#view.delete(event.key);
          break;
        case "ready":
          // Monotonic: the grace period must not end early when NTP steps the clock forward.
          this.#view.readComplete(this.#clock.monotonic());
          this.#log.info(
            `Read the desired state from NATS: ${this.#view.entries().size} deployment(s) for this device`,
          );
          break;
      }
      if (event.type === "ready" || this.#view.complete) {
        this.#cacheDirty = true;
        this.#wakeup.wake();
      }
    }
  }

  #answerCommands(nc: NatsConnection): CommandResponder {
    const config = this.#config;
    const context = {
      deviceId: config.device_id,
      transport: natsSessionTransport(nc, this.#log),
      clock: this.#clock,
      log: this.#log,
      audit: (record: AuditRecord) => publishAudit(nc, record),
    };
    const sessions = new LogSessions({
      ...context,
      runtime: this.#options.runtime,
      journal: agentJournal,
    });
    const execs = new ExecSessions({
      ...context,
      runtime: this.#options.runtime,
      policy: { exec: config.remote.exec, hostShell: config.remote.host_shell },
    });
    this.#sessions = [sessions, execs];
    void execs.removeLeftovers();
    return new CommandResponder({
      nc,
      deviceId: config.device_id,
      log: this.#log,
      clock: this.#clock,
      audit: (record) => publishAudit(nc, record),
      handlers: {
        logs: (request, from) => sessions.open(request, from.principal),
        exec: (request, from) => execs.open(request, from.principal),
        ...commandHandlers({
          config,
          version: this.#options.version,
          clock: this.#clock,
          nc,
          runtime: this.#options.runtime,
          credentials: this.#options.credentials.describe(),
          startedAt: this.#startedAt,
          cachePath: this.#cache.path,
          desiredCount: () => this.#view.entries().size,
          readFromNats: () => this.#view.complete,
          states: () => this.states(),
          warnings: this.#warnings,
          reconcileNow: () => this.#reconcileNow(),
        }),
      },
    });
  }

  /** Wakes the reconcile loop and resolves when a pass that started after the call ended. */
  #reconcileNow(): Promise<ReconcileResult> {
    return new Promise((resolve, reject) => {
      this.#passWaiters.push({
        after: this.#passesStarted,
        done: (r) => r instanceof Error ? reject(r) : resolve(r),
      });
      this.#wakeup.wake();
    });
  }

  /** Tells the `reconcile` commands waiting for pass `index` how it ended. */
  #passEnded(index: number, result: ReconcileResult | Error): void {
    const ready = this.#passWaiters.filter((w) => w.after < index);
    this.#passWaiters = this.#passWaiters.filter((w) => w.after >= index);
    for (const w of ready) w.done(result);
  }

  /** The control plane's word on another agent running as this device. */
  #onConflictDecision(raw: string | undefined): void {
    if (!this.#guard.onDecision(raw)) return;
    const reporter = this.#reporter;
    reporter?.standBy(this.#guard.standingBy);
    // The owner's labels must win over what the other agent published meanwhile.
    if (this.#guard.role === "owner") reporter?.republishAll();
    void reporter?.sync();
    this.#wakeup.wake();
  }

  async #heartbeat(): Promise<void> {
    await this.#reporter?.heartbeat();
    await this.#reporter?.sync();
  }

  async #reconcileLoop(signal: AbortSignal): Promise<void> {
    const relistMs = this.#config.intervals.relist_seconds * 1000;
    let podmanDown = false;
    let delay = 0;
    while (!signal.aborted) {
      await this.#wakeup.wait(delay, signal);
      if (signal.aborted) break;
      delay = relistMs;
      if (this.#cacheDirty) await this.#saveCache();
      // Another agent owns this device: its containers are not ours to touch.
      if (this.#guard.standingBy) {
        this.#passEnded(
          Infinity,
          new Error("another agent runs as this device; this one stands by"),
        );
        continue;
      }
      const index = ++this.#passesStarted;
      const began = this.#clock.monotonic();
      try {
        const desired = await this.#policy.enforce(this.#view.entries());
        const result = await this.#reconciler.pass({
          deviceId: this.#config.device_id,
          desired,
          retained: (refs) => {
            const keep = this.#view.retained(refs, this.#clock.monotonic());
            // Desired state that arrived after `desired` was copied (while the policy was
            // checked) is no orphan: the next pass runs it.
            for (const ref of this.#view.entries().keys()) if (!desired.has(ref)) keep.add(ref);
            return keep;
          },
          evictions: (observed) => this.#policy.evictions(observed, desired),
        });
        if (podmanDown) {
          podmanDown = false;
          this.#log.info("Podman answers again; reconciling");
        }
        this.passes++;
        this.#passEnded(index, {
          passes: this.passes,
          durationMs: this.#clock.monotonic() - began,
        });
        const reporter = this.#reporter!;
        for (const a of result.assessments) reporter.assess(a);
        for (const ref of reporter.states().keys()) {
          if (!this.#view.entries().has(ref) && !result.lingering.has(ref)) {
            reporter.forget(ref);
            this.#view.settled(ref);
          }
        }
        void reporter.sync();
        // Confirm soon what was just changed, instead of waiting a whole relist.
        if (result.actions > 0) delay = Math.min(250, relistMs);
        // A backoff that ends or a container that will have been up long enough.
        if (result.wakeAt !== undefined) {
          delay = Math.min(delay, Math.max(0, result.wakeAt - this.#clock.monotonic()));
        }
      } catch (error) {
        if (!podmanDown) {
          podmanDown = true;
          this.#log.error(
            `Cannot reach the container runtime (${
              (error as Error).message
            }); containers are left as they are, retrying`,
          );
        }
        // The control plane should see it too: every deployment here is failing for this reason.
        const message = `cannot reach the container runtime: ${(error as Error).message}`;
        for (const entry of this.#view.entries().values()) {
          this.#reporter?.assess({
            ref: entry.ref,
            generation: entry.generation,
            phase: "Failed",
            error: message,
            ...(entry.revision === undefined ? {} : { revision: entry.revision }),
          });
        }
        void this.#reporter?.sync();
        this.#passEnded(index, new Error(message));
        delay = Math.min(5000, relistMs);
      }
    }
  }

  async #saveCache(): Promise<void> {
    this.#cacheDirty = false;
    try {
      await this.#cache.save(this.#view.rawValues());
    } catch (error) {
      this.#cacheDirty = true;
      this.#log.warn(
        `Could not save the desired-state cache ${this.#cache.path}: ${(error as Error).message}`,
      );
    }
  }
}
