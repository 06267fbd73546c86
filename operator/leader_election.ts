/**
 * Leader election over a {@link LeaseStore}, so several operator replicas can run and only
 * one writes. A replica leads while it keeps renewing the lease; a standby takes over once
 * the holder has not renewed for a whole lease duration, measured on the standby's own
 * monotonic clock from when it last saw the lease change. No replica compares a time written
 * by another, so clock skew between nodes does not matter. Every write is compare-and-set, so
 * two replicas racing for the lease cannot both win.
 * @module
 */
import { type Clock, errorMessage } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { systemClock } from "../adapters/clock.ts";
import { DeadlineError, sleep, withDeadline } from "../adapters/timers.ts";
import type { LeaseRecord, LeaseStore, StoredLease } from "./lease_store.ts";

/** Options of {@link runAsLeader}. */
export interface LeaderElectionOptions {
  /** The lease all replicas compete for. */
  store: LeaseStore;
  /** This replica's identity in the lease; unique among the replicas. */
  identity: string;
  log: Logger;
  /** @default the system clock */
  clock?: Clock;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** How often the leader renews and a standby retries. @default 2000 */
  retryIntervalMs?: number;
  /**
   * A leader that could not renew for this long steps down; shorter than the lease
   * duration, so it has stopped writing before any standby may take over. @default 10000
   */
  renewDeadlineMs?: number;
}

/**
 * How {@link runAsLeader} ended: `stopped` after its signal aborted or `lead` returned (the
 * lease was released), `lost` when leadership was lost (the caller should exit).
 */
export type ElectionOutcome = "stopped" | "lost";

/** The options of {@link runAsLeader} do not make a safe election; the message says why. */
export class LeaderElectionConfigError extends Error {
  override name = "LeaderElectionConfigError";
}

/** The timings of {@link LeaderElectionOptions}, derived from a lease duration. */
export interface ElectionTimings {
  leaseDurationSeconds: number;
  retryIntervalMs: number;
  renewDeadlineMs: number;
}

/**
 * client-go's proportions for a lease duration: retry every 2/15 of it (at least 250 ms),
 * step down after 2/3 of it.
 */
export function electionTimings(leaseDurationSeconds: number): ElectionTimings {
  const leaseMs = leaseDurationSeconds * 1000;
  return {
    leaseDurationSeconds,
    retryIntervalMs: Math.max(250, leaseMs * 2 / 15),
    renewDeadlineMs: leaseMs * 2 / 3,
  };
}

/**
 * Waits to become leader, then runs `lead` with a signal that aborts if leadership is lost.
 * Returns "stopped" after `signal` aborted or `lead` returned (the lease is released, so a
 * standby takes over at once), or "lost" when the lease could not be renewed within the
 * renew deadline or another replica holds it: `lead` has been stopped then, and the caller
 * should exit so nothing writes as a non-leader.
 *
 * @throws {LeaderElectionConfigError} for an empty identity or a renew deadline that is not
 *   shorter than the lease duration.
 * @throws what `lead` throws, after releasing the lease.
 */
export async function runAsLeader(
  options: LeaderElectionOptions,
  signal: AbortSignal,
  lead: (signal: AbortSignal) => Promise<void>,
): Promise<ElectionOutcome> {
  return await new Election(options).run(signal, lead);
}

/** What one attempt to acquire or renew the lease found. */
type Attempt =
  | { kind: "held"; startedAt: number }
  | { kind: "busy"; holder: string }
  | { kind: "failed" };

class Election {
  readonly #store: LeaseStore;
  readonly #identity: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #leaseDurationSeconds: number;
  readonly #retryIntervalMs: number;
  readonly #renewDeadlineMs: number;
  /** The revision last read and when (monotonic): the start of the holder's grace. */
  #observed: { revision: string; at: number } | undefined;
  /** The last holder a standby reported, so it says who it waits for once per holder. */
  #reportedHolder = "";
  /** The last failure logged as a warning; repeats go to debug. */
  #lastProblem = "";

  constructor(o: LeaderElectionOptions) {
    this.#store = o.store;
    this.#identity = o.identity;
    this.#clock = o.clock ?? systemClock;
    this.#leaseDurationSeconds = o.leaseDurationSeconds ?? 15;
    this.#retryIntervalMs = o.retryIntervalMs ?? 2000;
    this.#renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.#log = o.log.with({ component: "leader-election" });
    if (o.identity === "") {
      throw new LeaderElectionConfigError(
        "Leader election needs a non-empty identity for this replica (an empty one means 'released')",
      );
    }
    if (
      !Number.isInteger(this.#leaseDurationSeconds) || this.#leaseDurationSeconds < 1 ||
      !(this.#renewDeadlineMs < this.#leaseDurationSeconds * 1000) || !(this.#retryIntervalMs > 0)
    ) {
      throw new LeaderElectionConfigError(
        `Leader election needs a renew deadline shorter than the lease duration and a positive ` +
          `retry interval: lease ${this.#leaseDurationSeconds} s, renew deadline ` +
          `${this.#renewDeadlineMs} ms, retry interval ${this.#retryIntervalMs} ms`,
      );
    }
  }

  async run(
    signal: AbortSignal,
    lead: (signal: AbortSignal) => Promise<void>,
  ): Promise<ElectionOutcome> {
    const where = this.#store.description;
    this.#log.info(`Waiting to lead (${where}, identity ${this.#identity})`);
    let acquired: number | undefined;
    while (!signal.aborted) {
      const attempt = await this.#attempt();
      if (attempt.kind === "held") {
        acquired = attempt.startedAt;
        break;
      }
      await sleep(this.#retryIntervalMs, signal, this.#clock);
    }
    if (acquired === undefined) return "stopped";

    this.#log.info(`Became the leader (${where})`);
    const leadership = new AbortController();
    const stopLeading = () => leadership.abort();
    signal.addEventListener("abort", stopLeading);
    // Kept, not thrown here: it is rethrown once the lease is handed back.
    let failure: { error: unknown } | undefined;
    const leading = lead(leadership.signal)
      .catch((error: unknown) => void (failure = { error }))
      .finally(stopLeading);
    let outcome: ElectionOutcome = "stopped";
    try {
      outcome = await this.#keepRenewing(acquired, leadership);
    } finally {
      signal.removeEventListener("abort", stopLeading);
      leadership.abort();
      await leading;
    }
    // A lost lease is not ours to touch: another replica may hold it already.
    if (outcome === "stopped") await this.#release();
    if (failure) throw failure.error;
    return outcome;
  }

  /** Renews until `leadership` aborts ("stopped") or the lease is lost ("lost"). */
  async #keepRenewing(lastRenew: number, leadership: AbortController): Promise<ElectionOutcome> {
    while (!leadership.signal.aborted) {
      const deadline = lastRenew + this.#renewDeadlineMs;
      // Never sleep past the deadline: the step-down must happen on time.
      const wait = Math.min(this.#retryIntervalMs, deadline - this.#clock.monotonic());
      await sleep(Math.max(0, wait), leadership.signal, this.#clock);
      if (leadership.signal.aborted) break;
      const remaining = deadline - this.#clock.monotonic();
      const attempt: Attempt = remaining > 0
        ? await this.#attemptWithin(remaining)
        : { kind: "failed" };
      if (attempt.kind === "held") {
        lastRenew = attempt.startedAt;
        continue;
      }
      if (attempt.kind === "busy") {
        this.#log.error(
          `Lost the leadership: ${attempt.holder} holds the lease now; stopping all writes`,
        );
        return "lost";
      }
      if (this.#clock.monotonic() - lastRenew >= this.#renewDeadlineMs) {
        this.#log.error(
          `Lost the leadership: the lease could not be renewed within ` +
            `${this.#renewDeadlineMs / 1000} s; stopping all writes`,
        );
        return "lost";
      }
    }
    return "stopped";
  }

  /** An attempt that gives up at `ms`: a store that hangs must not delay a step-down. */
  async #attemptWithin(ms: number): Promise<Attempt> {
    try {
      return await withDeadline(
        this.#attempt(),
        ms,
        `renewing took longer than the ${this.#renewDeadlineMs / 1000} s renew deadline`,
        this.#clock,
      );
    } catch (error) {
      if (!(error instanceof DeadlineError)) throw error;
      this.#problem(error.message);
      return { kind: "failed" };
    }
  }

  /** Acquires or renews the lease, never throwing: a failure is logged and retried. */
  async #attempt(): Promise<Attempt> {
    try {
      return await this.#tryAcquireOrRenew();
    } catch (error) {
      this.#problem(errorMessage(error));
      return { kind: "failed" };
    }
  }

  async #tryAcquireOrRenew(): Promise<Attempt> {
    // The start, not the end: the leader's own deadline must count from before its write.
    const startedAt = this.#clock.monotonic();
    const current = await this.#store.get();
    if (current === undefined) {
      const write = await this.#store.create(this.#record(undefined));
      return this.#written(write.outcome, startedAt);
    }
    // The end, not the start: a standby's grace must count from after the write it saw.
    const seenAt = this.#clock.monotonic();
    if (this.#observed?.revision !== current.revision) {
      this.#observed = { revision: current.revision, at: seenAt };
    }
    const { holderIdentity: holder, leaseDurationSeconds } = current.record;
    const mine = holder === this.#identity;
    if (holder !== "" && !mine) {
      const quietMs = seenAt - this.#observed.at;
      if (quietMs < leaseDurationSeconds * 1000) {
        this.#standingBy(holder);
        return { kind: "busy", holder };
      }
    }
    const write = await this.#store.update(this.#record(current), current.revision);
    if (write.outcome === "written" && !mine && holder !== "") {
      this.#log.info(
        `Took over the lease from ${holder}, which had not renewed it for a whole lease ` +
          `duration (${leaseDurationSeconds} s)`,
      );
    }
    return this.#written(write.outcome, startedAt);
  }

  #written(outcome: "written" | "conflict", startedAt: number): Attempt {
    if (outcome === "conflict") {
      this.#log.debug("Another replica wrote the lease first");
      return { kind: "failed" };
    }
    this.#lastProblem = "";
    return { kind: "held", startedAt };
  }

  /** The record this replica writes to hold `current` (undefined: a new lease). */
  #record(current: StoredLease | undefined): LeaseRecord {
    const now = new Date(this.#clock.now()).toISOString();
    const mine = current?.record.holderIdentity === this.#identity;
    const previous = current?.record;
    return {
      holderIdentity: this.#identity,
      leaseDurationSeconds: this.#leaseDurationSeconds,
      acquireTime: mine && previous?.acquireTime ? previous.acquireTime : now,
      renewTime: now,
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (previous && !mine ? 1 : 0),
    };
  }

  #standingBy(holder: string): void {
    if (holder === this.#reportedHolder) return;
    this.#reportedHolder = holder;
    this.#log.info(`Standing by: ${holder} leads (${this.#store.description})`);
  }

  #problem(message: string): void {
    const line = `Could not acquire or renew the ${this.#store.description}: ${message}`;
    if (message === this.#lastProblem) this.#log.debug(line);
    else this.#log.warn(line);
    this.#lastProblem = message;
  }

  /** Hands the lease back so a standby need not wait a whole lease duration. */
  async #release(): Promise<void> {
    const where = this.#store.description;
    try {
      await withDeadline(
        (async () => {
          const current = await this.#store.get();
          if (current === undefined || current.record.holderIdentity !== this.#identity) return;
          const write = await this.#store.update({
            ...current.record,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            renewTime: new Date(this.#clock.now()).toISOString(),
          }, current.revision);
          if (write.outcome === "written") this.#log.info(`Released the ${where}`);
          else this.#log.warn(`Did not release the ${where}: another replica wrote it meanwhile`);
        })(),
        this.#renewDeadlineMs,
        `no answer within ${this.#renewDeadlineMs / 1000} s`,
        this.#clock,
      );
    } catch (error) {
      const message = errorMessage(error);
      this.#log.warn(
        `Could not release the ${where} (${message}); a standby takes over once it expires`,
      );
    }
  }
}
