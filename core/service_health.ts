/**
 * How one service's container does over time, folded from the agent's passes: whether it has
 * stayed up long enough, with its ports published, to count as ready, and whether it keeps
 * exiting (a crash loop). An exit is seen either as podman's restart count going up (its
 * restart policy brought the container back) or as the container found exited against its
 * restart policy (the agent recreates it). podman lists start times in whole seconds, so the
 * restart count is also checked once before a run is called ready. A service with a healthcheck
 * is ready only once podman has found it healthy and it has stayed so for min_ready; podman's
 * `unhealthy` (its retries used up) fails it. Pure: the agent's monotonic time and the host's
 * wall-clock time come in.
 * @module
 */
import type { ParsedPort } from "./score.ts";
import type { ObservedContainer, ServiceCondition } from "./planner.ts";

/** More exits than this within {@link CRASH_LOOP_WINDOW_MS} is a crash loop. */
export const CRASH_LOOP_EXITS = 3;
export const CRASH_LOOP_WINDOW_MS = 10 * 60_000;

/** A service's health as reported: `none` when it has no healthcheck. */
export const HealthStates = ["none", "starting", "healthy", "unhealthy"] as const;
export type HealthState = typeof HealthStates[number];

/** What podman says of a running container's healthcheck. */
export interface HealthcheckResult {
  /** podman's status: `starting`, `healthy` or `unhealthy`. */
  status: string;
  /** Failed checks in a row. */
  failingStreak: number;
  /** Host epoch ms the latest check started; undefined when none ran yet. */
  lastCheckAt: number | undefined;
  /**
   * Host epoch ms the oldest check podman still logs of the passing streak the latest check
   * ends started; undefined when the latest check failed or none ran.
   */
  passingSince: number | undefined;
  /** The latest check's output, trimmed. */
  lastOutput: string;
}

/**
 * A check podman's own timer would have run by now is given this long before the agent runs it
 * (see {@link healthcheckDueAt}).
 */
export const HEALTHCHECK_GRACE_MS = 1_000;

/**
 * Host epoch ms at which the agent must run a container's healthcheck itself. Podman runs
 * healthchecks from systemd timers; on a host without systemd (podman 4.3 here: the status stays
 * `starting` with no check ever run) nobody does. So the agent runs one when none has started for
 * an interval since the later of the container's start and the latest check, plus a grace: where
 * podman's timer exists it always comes first, and no check runs twice.
 */
export function healthcheckDueAt(
  startedAt: number,
  lastCheckAt: number | undefined,
  intervalMs: number,
): number {
  return Math.max(startedAt, lastCheckAt ?? 0) + intervalMs + HEALTHCHECK_GRACE_MS;
}

/** One service's history under one spec (a changed spec starts a new one). */
export interface ServiceHealth {
  /** The service spec hash this history is about. */
  hash: string;
  /** The container last seen for the service. */
  containerId: string | undefined;
  /** That container's last start as last seen (epoch ms). */
  startedAt: number | undefined;
  /** podman's restart count of that container, once asked. */
  restartCount: number | undefined;
  /** It was last seen exited against its restart policy (that exit is counted). */
  exited: boolean;
  /** Monotonic ms since when its current run is up; undefined when it is not running. */
  upSince: number | undefined;
  /** Its current run has been found ready (its restart count checked). */
  ready: boolean;
  /** Monotonic times of the latest exits, at most CRASH_LOOP_EXITS + 1, oldest first. */
  exits: readonly number[];
  /** Exits seen since this history began. */
  restarts: number;
  /** Monotonic ms since when its current run has been healthy; undefined when it is not. */
  healthySince?: number | undefined;
}

/** One pass's view of a service. */
export interface ServiceObservation {
  hash: string;
  container: ObservedContainer | undefined;
  condition: ServiceCondition;
  /** podman's restart count of `container`, when {@link needsRestartCount} asked for it. */
  restartCount?: number | undefined;
  /** The ports the service publishes. */
  ports: readonly ParsedPort[];
  /**
   * For a service with a healthcheck: podman's word on the running container, or null when it
   * is not running or could not be read. Absent for a service without one.
   */
  healthcheck?: HealthcheckResult | null;
}

export interface ServiceVerdict {
  health: ServiceHealth;
  /** Exits first seen in this pass. */
  newExits: number;
  /**
   * Monotonic ms from which the service counts as ready (now or later); undefined while it
   * cannot be (not running, or a port is not published).
   */
  readyAt: number | undefined;
  healthState: HealthState;
  /** Why the service fails its healthcheck (podman found it unhealthy), or undefined. */
  unhealthy: string | undefined;
}

/**
 * Whether the pass must ask podman for the container's restart count: for a container (or a
 * start of it) not seen before, so that restarts between two passes are all counted, and once
 * more when its run would become ready, for restarts within the second podman lists.
 * Never for a run that is ready: not a request per container per pass.
 */
export function needsRestartCount(
  previous: ServiceHealth | undefined,
  container: ObservedContainer | undefined,
  now: number,
  minReadyMs: number,
): boolean {
  if (container?.startedAt === undefined) return false;
  if (previous?.containerId !== container.id || previous.startedAt !== container.startedAt) {
    return true;
  }
  return !previous.ready && previous.upSince !== undefined &&
    now >= previous.upSince + minReadyMs;
}

/**
 * Folds one observation into the history.
 *
 * @param now the agent's monotonic ms
 * @param wallNow this host's epoch ms: a run podman says started before the agent saw it
 *   (an agent restart) is credited with its age, so a long-running container is ready at once
 * @param minReadyMs how long a run must be up before the service counts as ready
 */
export function observeService(
  previous: ServiceHealth | undefined,
  observation: ServiceObservation,
  now: number,
  wallNow: number,
  minReadyMs: number,
): ServiceVerdict {
  const prev = previous?.hash === observation.hash ? previous : undefined;
  const c = observation.container;
  const same = prev !== undefined && c !== undefined && prev.containerId === c.id;
  const exited = observation.condition === "exited";

  // podman's restart count says how often its policy restarted the container (without it, a
  // new start time says once); an exit already counted when it was seen is not counted again.
  let newExits = 0;
  let restarted = false;
  if (same) {
    const restarts = observation.restartCount !== undefined && prev.restartCount !== undefined
      ? observation.restartCount - prev.restartCount
      : c.startedAt !== prev.startedAt && prev.startedAt !== undefined
      ? 1
      : 0;
    restarted = restarts > 0;
    if (restarted) newExits += restarts - (prev.exited ? 1 : 0);
  }
  if (exited && !(same && prev.exited)) newExits++;

  const running = c?.state === "running";
  const sameRun = same && !restarted && c.startedAt === prev.startedAt;
  let upSince: number | undefined;
  if (running && sameRun && prev.upSince !== undefined) upSince = prev.upSince;
  else if (running && restarted && c.startedAt === prev?.startedAt) upSince = now; // within its second
  else if (running) {
    upSince = now - Math.max(0, c.startedAt === undefined ? 0 : wallNow - c.startedAt);
  }

  const check = observation.healthcheck;
  // A verdict from before the current run started (podman keeps it across a restart) is not one
  // on this run.
  const stale = check?.lastCheckAt !== undefined && c?.startedAt !== undefined &&
    check.lastCheckAt < c.startedAt;
  const healthState: HealthState = check === undefined
    ? "none"
    : check === null || upSince === undefined || stale
    ? "starting"
    : check.status === "healthy" || check.status === "unhealthy"
    ? check.status
    : "starting";
  // Healthy since the first passing check podman logs of this run, or since now.
  let healthySince: number | undefined;
  if (healthState === "healthy" && sameRun && prev.healthySince !== undefined) {
    healthySince = prev.healthySince;
  } else if (healthState === "healthy") {
    const since = check?.passingSince;
    healthySince = Math.max(
      upSince!,
      since === undefined ? now : now - Math.max(0, wallNow - since),
    );
  }

  let readyAt: number | undefined;
  if (observation.condition === "finished") readyAt = now;
  else if (upSince !== undefined && portsPublished(observation.ports, c?.ports)) {
    if (check === undefined) readyAt = upSince + minReadyMs;
    else if (healthySince !== undefined) readyAt = healthySince + minReadyMs;
  }
  const unhealthy = healthState === "unhealthy" && check
    ? `healthcheck failed ${check.failingStreak} times in a row${
      check.lastOutput === "" ? "" : `: ${check.lastOutput}`
    }`
    : undefined;

  const keep = CRASH_LOOP_EXITS + 1;
  const exits = newExits === 0
    ? prev?.exits ?? []
    : [...(prev?.exits ?? []), ...Array<number>(Math.min(newExits, keep)).fill(now)].slice(-keep);
  const health: ServiceHealth = {
    hash: observation.hash,
    containerId: c?.id,
    startedAt: c?.startedAt,
    restartCount: observation.restartCount ?? (same ? prev.restartCount : undefined),
    exited,
    upSince,
    ready: readyAt !== undefined && readyAt <= now,
    exits,
    restarts: (prev?.restarts ?? 0) + newExits,
    healthySince,
  };
  return { health, newExits, readyAt, healthState, unhealthy };
}

/** Whether the service's exits make a crash loop at monotonic time `now`. */
export function isCrashLooping(health: ServiceHealth, now: number): boolean {
  const oldest = health.exits[0];
  return health.exits.length > CRASH_LOOP_EXITS && oldest !== undefined &&
    oldest > now - CRASH_LOOP_WINDOW_MS;
}

/** Whether every port the service asks for is published; unknown (`undefined`) counts as yes. */
function portsPublished(
  wanted: readonly ParsedPort[],
  published: ObservedContainer["ports"],
): boolean {
  if (published === undefined) return true;
  return wanted.every((w) =>
    published.some((p) => {
      const offset = w.hostPort - p.hostPort;
      return p.protocol === w.protocol && offset >= 0 && offset < (p.range ?? 1) &&
        p.containerPort + offset === w.containerPort;
    })
  );
}
