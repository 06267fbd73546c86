/**
 * One reconcile pass: observe podman, plan, carry out the actions, and say how each
 * deployment is doing. Failures are collected per deployment; one bad deployment never
 * stops the others. Between passes it remembers how each service's container has done
 * (up long enough to be ready? exiting again and again?) and which deployments are backing
 * off after a failure: those get no actions until their next try is due. It runs healthchecks
 * that are due itself, in the background (podman's own timers need systemd; see
 * core healthcheckDueAt), and a pass reads the verdict podman recorded.
 */
import {
  type Action,
  type Assessment,
  type Clock,
  ContainerLabels,
  currentFailure,
  type DesiredEntry,
  errorMessage,
  type FailureBackoff,
  type FailureCause,
  healthcheckDueAt,
  type HealthcheckResult,
  healthcheckTimes,
  isBackingOff,
  isCrashLooping,
  needsRestartCount,
  type ObservedContainer,
  observeService,
  parsePort,
  plan,
  recordFailure,
  refKey,
  type ServiceHealth,
  type ServiceReport,
  type ServiceStatus,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { ContainerRuntime, LastExit } from "./runtime.ts";

export interface PassInput {
  deviceId: string;
  desired: ReadonlyMap<string, DesiredEntry>;
  /** Computes the deployments whose containers must stay, given those observed. */
  retained(observedRefs: Iterable<string>): ReadonlySet<string>;
  /**
   * Containers to remove before planning, by id, with why (the device policy's verdict on
   * containers no accepted desired state vouches for). None when absent.
   */
  evictions?(observed: readonly ObservedContainer[]): Promise<ReadonlyMap<string, string>>;
}

export interface PassResult {
  assessments: Assessment[];
  /** Number of actions carried out (successfully or not). */
  actions: number;
  /** Deployments without desired state whose containers are still there (retained or not yet removed). */
  lingering: Set<string>;
  /**
   * Monotonic ms at which a pass is due before the next relist: a backoff ends or a
   * container will have been up long enough to be ready. Undefined when nothing waits.
   */
  wakeAt: number | undefined;
}

export interface ReconcilerOptions {
  runtime: ContainerRuntime;
  log: Logger;
  stopTimeoutSeconds: number;
  /**
   * How long every container must stay up (and healthy, with a healthcheck) before its
   * deployment is Running, unless the deployment says (minReadySeconds).
   */
  minReadyMs: number;
  /** Its monotonic time paces backoffs and readiness; its wall time dates container starts. */
  clock: Clock;
  /** The backoff's jitter. @default Math.random */
  random?: () => number;
  /** Called when a healthcheck the reconciler ran has finished: a pass reads its verdict. */
  onHealthcheckRun?: () => void;
}

/** A step of an action that failed, named as a person reads it: `image pull failed: ...`. */
class StepFailure extends Error {
  constructor(step: string, cause: unknown) {
    super(`${step} failed: ${errorMessage(cause)}`, { cause });
  }
}

async function step<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new StepFailure(name, error);
  }
}

function describe(action: Action, replacement: Action | undefined): string {
  return action.kind === "create"
    ? `Creating container ${action.containerName} (${action.service.image}): ${action.reason}`
    : action.kind === "start"
    ? `Starting container ${action.containerName}: ${action.reason}`
    : replacement !== undefined
    ? `Replacing container ${action.containerName}: ${action.reason}`
    : `Removing container ${action.containerName}: ${action.reason}`;
}

/** How a deployment's services are doing in this pass. */
interface Readiness {
  ready: boolean;
  crashLooping: boolean;
  /** Why the first unhealthy service fails its healthcheck. */
  unhealthy: string | undefined;
  services: ServiceReport[];
}

/** The create of the container `action` removes, when the plan makes it again. */
function replacementOf(
  action: Action,
  actions: readonly Action[],
): Extract<Action, { kind: "create" }> | undefined {
  if (action.kind !== "remove") return undefined;
  return actions.find((a): a is Extract<Action, { kind: "create" }> =>
    a.kind === "create" && a.containerName === action.containerName
  );
}

/** The `retry` of a desired entry (0 when a person never retried it). */
function retryOf(entry: DesiredEntry | undefined): number {
  return entry !== undefined && "retry" in entry ? entry.retry ?? 0 : 0;
}

export class Reconciler {
  readonly #runtime: ContainerRuntime;
  readonly #log: Logger;
  readonly #stopTimeoutSeconds: number;
  readonly #minReadyMs: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  /** `<namespace>.<deployment>/<service>` → its history under its current spec. */
  readonly #health = new Map<string, ServiceHealth>();
  /** refKey → the failure streak of a desired deployment. */
  readonly #failures = new Map<string, FailureBackoff>();
  /** The desired state's `retry` each failure streak began under. */
  readonly #failedRetry = new Map<string, number>();
  /** Containers whose healthcheck is running now. */
  readonly #checking = new Set<string>();
  readonly #onHealthcheckRun: () => void;

  constructor(options: ReconcilerOptions) {
    this.#runtime = options.runtime;
    this.#log = options.log;
    this.#stopTimeoutSeconds = options.stopTimeoutSeconds;
    this.#minReadyMs = options.minReadyMs;
    this.#clock = options.clock;
    this.#random = options.random ?? Math.random;
    this.#onHealthcheckRun = options.onHealthcheckRun ?? (() => {});
  }

  /** Runs one pass; throws only when podman itself cannot be listed. */
  async pass(input: PassInput): Promise<PassResult> {
    const listed = await this.#runtime.listManaged(input.deviceId);
    const evicted = await this.#evict(listed, input);
    const observed = listed.filter((c) => !evicted.has(c.id));
    const now = this.#clock.monotonic();
    const observedRefs = new Set<string>();
    for (const c of observed) {
      const ns = c.labels[ContainerLabels.namespace];
      const name = c.labels[ContainerLabels.deployment];
      if (ns && name) observedRefs.add(`${ns}.${name}`);
    }
    const retained = input.retained(observedRefs);
    const { actions, assessments, services } = plan({
      deviceId: input.deviceId,
      desired: input.desired,
      observed,
      retained,
    });
    let wakeAt: number | undefined;
    const wakeBy = (at: number) => {
      if (at > now && (wakeAt === undefined || at < wakeAt)) wakeAt = at;
    };

    const readiness = await this.#observeServices(services, input.desired, now, wakeBy);
    for (const key of this.#failures.keys()) {
      const entry = input.desired.get(key);
      // Gone, or a person retried its rollout (`fleet rollout retry`): the streak is over.
      if (entry === undefined || retryOf(entry) !== this.#failedRetry.get(key)) {
        this.#failures.delete(key);
        this.#failedRetry.delete(key);
      }
    }

    const failed = new Set<string>();
    let carried = 0;
    for (const action of actions) {
      const key = action.ref ? refKey(action.ref) : undefined;
      // After one failure in a deployment, skip its remaining steps (e.g. create after a failed remove).
      if (key !== undefined && failed.has(key)) continue;
      const entry = key === undefined ? undefined : input.desired.get(key);
      if (entry && isBackingOff(this.#failures.get(key!), entry.generation, now)) continue;
      carried++;
      const replacement = replacementOf(action, actions);
      this.#log.info(
        describe(action, replacement),
        key ? { deployment: key.replace(".", "/") } : {},
      );
      try {
        await this.#carryOut(action, replacement);
      } catch (error) {
        const message = (error as Error).message;
        const verb = replacement === undefined ? action.kind : "replace";
        this.#log.error(`Could not ${verb} container ${action.containerName}: ${message}`);
        if (key === undefined) continue;
        failed.add(key);
        // Timed from the failure, not the pass: the next pull comes a whole backoff after this one.
        if (entry) {
          this.#fail(
            key,
            entry.generation,
            retryOf(entry),
            { what: message },
            this.#clock.monotonic(),
          );
        }
      }
    }

    const lingering = new Set(
      [...observedRefs].filter((ref) =>
        !input.desired.has(ref) && (retained.has(ref) || failed.has(ref))
      ),
    );
    return {
      actions: carried + evicted.size,
      lingering,
      assessments: assessments.map((a) => this.#judge(a, readiness.get(refKey(a.ref)), wakeBy)),
      wakeAt,
    };
  }

  /**
   * Folds this pass's view of every service into its history, removes the container of a
   * crash loop just found (podman's restart policy would restart it in a hot loop, and a stop
   * can land between two of its runs and be undone) and backs its deployment off. Returns how
   * each deployment's services are doing.
   */
  async #observeServices(
    services: readonly ServiceStatus[],
    desired: ReadonlyMap<string, DesiredEntry>,
    now: number,
    wakeBy: (at: number) => void,
  ): Promise<Map<string, Readiness>> {
    const wallNow = this.#clock.now();
    const readiness = new Map<string, Readiness>();
    const seen = new Set<string>();
    for (const s of services) {
      const key = refKey(s.ref);
      const slot = `${key}/${s.service.name}`;
      seen.add(slot);
      const previous = this.#health.get(slot);
      const entry = desired.get(key);
      // The deployment's minReadySeconds wins over the agent's own.
      const minReadyMs = (entry && "score" in entry ? entry.minReadyMs : undefined) ??
        this.#minReadyMs;
      const restartCount = needsRestartCount(previous, s.container, now, minReadyMs)
        ? await this.#restartCount(s.container!.id)
        : undefined;
      const verdict = observeService(
        previous,
        {
          hash: s.hash,
          container: s.container,
          condition: s.condition,
          restartCount,
          ports: s.service.ports.map(parsePort),
          ...(s.service.healthcheck
            ? { healthcheck: await this.#healthcheck(s, now, wallNow, wakeBy) }
            : {}),
        },
        now,
        wallNow,
        minReadyMs,
      );
      const { health } = verdict;
      let { readyAt } = verdict;
      const crashLooping = isCrashLooping(health, now);
      if (crashLooping && verdict.newExits > 0 && s.container) {
        await this.#backOffCrashLoop(s, health, retryOf(desired.get(key)), now);
        readyAt = undefined; // removed
      }
      this.#health.set(slot, health);

      if (readyAt !== undefined) wakeBy(readyAt);
      const ready = readyAt !== undefined && readyAt <= now;
      const soFar: Readiness = readiness.get(key) ??
        { ready: true, crashLooping: false, unhealthy: undefined, services: [] };
      readiness.set(key, {
        ready: soFar.ready && ready,
        crashLooping: soFar.crashLooping || crashLooping,
        unhealthy: soFar.unhealthy ??
          (verdict.unhealthy && `service ${s.service.name} is unhealthy: ${verdict.unhealthy}`),
        services: [
          ...soFar.services,
          { name: s.service.name, health: verdict.healthState, restarts: health.restarts },
        ],
      });
    }
    for (const slot of this.#health.keys()) {
      if (!seen.has(slot)) this.#health.delete(slot);
    }
    return readiness;
  }

  /**
   * podman's verdict on a running container's healthcheck (null when it is not running or
   * cannot be read), and the check run when it is due, in the background: a check may take up to
   * its timeout, which must not hold up the pass.
   */
  async #healthcheck(
    s: ServiceStatus,
    now: number,
    wallNow: number,
    wakeBy: (at: number) => void,
  ): Promise<HealthcheckResult | null> {
    const c = s.container;
    if (c?.state !== "running" || c.startedAt === undefined || !s.service.healthcheck) return null;
    let result: HealthcheckResult | undefined;
    try {
      result = await this.#runtime.health(c.id);
    } catch (error) {
      this.#log.debug(`Could not read the health of container ${c.name}`, { error });
      return null;
    }
    if (result === undefined || this.#checking.has(c.id)) return result ?? null;
    const { intervalMs } = healthcheckTimes(s.service.healthcheck);
    const dueAt = healthcheckDueAt(c.startedAt, result.lastCheckAt, intervalMs);
    if (dueAt > wallNow) {
      wakeBy(now + dueAt - wallNow);
      return result;
    }
    this.#checking.add(c.id);
    this.#runtime.runHealthcheck(c.id).catch((error) => {
      this.#log.debug(`Could not run the healthcheck of container ${c.name}`, { error });
    }).finally(() => {
      this.#checking.delete(c.id);
      this.#onHealthcheckRun();
    });
    return result;
  }

  async #backOffCrashLoop(
    s: ServiceStatus,
    health: ServiceHealth,
    retry: number,
    now: number,
  ): Promise<void> {
    const container = s.container!;
    const exit = await this.#lastExit(container.id);
    const exitCode = exit.exitCode ??
      (container.state === "running" ? undefined : container.exitCode);
    this.#fail(refKey(s.ref), s.generation, retry, {
      what: `service ${s.service.name} is crash-looping: ${
        exitCode === undefined ? "keeps exiting" : `exited with code ${exitCode}`
      }, restarted ${health.restarts} times`,
      output: exit.output,
    }, now);
    // Created again when the backoff ends; its last output is in the message meanwhile.
    this.#log.info(`Removing crash-looping container ${container.name}`, {
      deployment: `${s.ref.namespace}/${s.ref.name}`,
    });
    try {
      await this.#runtime.remove(container.id, this.#stopTimeoutSeconds);
    } catch (error) {
      this.#log.error(
        `Could not remove crash-looping container ${container.name}: ${(error as Error).message}`,
      );
    }
  }

  /** Removes the containers `input.evictions` names; returns the ids of those now gone. */
  async #evict(listed: readonly ObservedContainer[], input: PassInput): Promise<Set<string>> {
    const gone = new Set<string>();
    const evictions = await input.evictions?.(listed) ?? new Map<string, string>();
    for (const c of listed) {
      const why = evictions.get(c.id);
      if (why === undefined) continue;
      this.#log.warn(`Removing container ${c.name}: ${why}`);
      try {
        await this.#runtime.remove(c.id, this.#stopTimeoutSeconds);
        gone.add(c.id);
      } catch (error) {
        this.#log.error(`Could not remove container ${c.name}: ${(error as Error).message}`);
      }
    }
    return gone;
  }

  #fail(key: string, generation: number, retry: number, cause: FailureCause, now: number): void {
    this.#failures.set(
      key,
      recordFailure(this.#failures.get(key), generation, cause, now, this.#random()),
    );
    this.#failedRetry.set(key, retry);
  }

  /**
   * The deployment's phase, truthfully: Running only when every service is ready; Failed
   * while a failure streak lasts (until success or a new generation), with its message.
   */
  #judge(
    a: Assessment,
    readiness: Readiness | undefined,
    wakeBy: (at: number) => void,
  ): Assessment {
    const key = refKey(a.ref);
    if (readiness === undefined) return a; // unrunnable: the planner said why
    const seen = { ...a, services: readiness.services };
    const failure = currentFailure(this.#failures.get(key), a.generation);
    const healthy = a.phase === "Running" && readiness.ready && !readiness.crashLooping;
    if (failure !== undefined) {
      if (healthy) {
        this.#failures.delete(key);
        return seen;
      }
      wakeBy(failure.nextTryAt);
      return { ...seen, phase: "Failed", error: failure.message };
    }
    // Unhealthy means podman's retries are used up: a failure, while it lasts.
    if (readiness.unhealthy !== undefined && a.phase !== "Failed") {
      return { ...seen, phase: "Failed", error: readiness.unhealthy };
    }
    return a.phase === "Running" && !readiness.ready ? { ...seen, phase: "Pending" } : seen;
  }

  async #restartCount(containerId: string): Promise<number | undefined> {
    try {
      return await this.#runtime.restartCount(containerId);
    } catch (error) {
      // Counted as one restart instead: a crash loop is still found, only later.
      this.#log.debug(`Could not read the restart count of container ${containerId}`, { error });
      return undefined;
    }
  }

  async #lastExit(containerId: string): Promise<LastExit> {
    try {
      return await this.#runtime.lastExit(containerId);
    } catch (error) {
      this.#log.warn(
        `Could not read how container ${containerId} exited: ${(error as Error).message}`,
      );
      return { exitCode: undefined, output: "" };
    }
  }

  /** @param replacement the create that follows a remove of the same container, if any */
  async #carryOut(
    action: Action,
    replacement?: Extract<Action, { kind: "create" }>,
  ): Promise<void> {
    switch (action.kind) {
      case "create": {
        await step("image pull", () => this.#runtime.ensureImage(action.service.image));
        const id = await step(
          "create",
          () => this.#runtime.create(action.containerName, action.service, action.labels),
        );
        await step("start", () => this.#runtime.start(id));
        return;
      }
      case "start":
        await step("start", () => this.#runtime.start(action.containerId));
        return;
      case "remove": {
        // A container replaced by a new one goes only once the new image is here: a tag no
        // registry serves (or a registry out of reach) leaves the running container running.
        if (replacement !== undefined) {
          await step("image pull", () => this.#runtime.ensureImage(replacement.service.image));
        }
        await step(
          "remove",
          () => this.#runtime.remove(action.containerId, this.#stopTimeoutSeconds),
        );
        return;
      }
    }
  }
}
