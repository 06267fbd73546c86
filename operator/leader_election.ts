/**
 * Leader election on a `coordination.k8s.io` Lease, so several operator replicas can run
 * and only one writes. A replica leads while it keeps renewing the lease; a standby takes
 * over once the holder has not renewed for a whole lease duration (measured on the
 * standby's own clock, so clock skew between nodes does not matter).
 */
import { z } from "zod";
import type { Logger } from "../adapters/logger.ts";
import { sleep } from "../adapters/timers.ts";
import { KubeApiError, type KubeClient } from "../adapters/kube/mod.ts";
import { LeaseType, ObjectMeta } from "./kube_resources.ts";

const LeaseSpec = z.object({
  holderIdentity: z.string().nullish(),
  leaseDurationSeconds: z.number().int().nullish(),
  acquireTime: z.string().nullish(),
  renewTime: z.string().nullish(),
  leaseTransitions: z.number().int().nullish(),
});
const Lease = z.object({ metadata: ObjectMeta, spec: LeaseSpec.default({}) });
type Lease = z.infer<typeof Lease>;

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  /** Lease name, shared by all replicas. */
  name: string;
  /** This replica's identity (pod name, hostname). */
  identity: string;
  log: Logger;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** How often the leader renews and a standby retries. @default 2000 */
  retryIntervalMs?: number;
  /** A leader that could not renew for this long steps down. @default 10000 */
  renewDeadlineMs?: number;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export type ElectionOutcome = "stopped" | "lost";

/**
 * Waits to become leader, then runs `lead` with a signal that aborts if leadership is lost.
 * Returns "stopped" after `signal` aborted (the lease is released for a fast hand-over), or
 * "lost" when leadership was lost: the caller should exit, so nothing writes as a non-leader.
 */
export async function runAsLeader(
  options: LeaderElectionOptions,
  signal: AbortSignal,
  lead: (signal: AbortSignal) => Promise<void>,
): Promise<ElectionOutcome> {
  const o = {
    leaseDurationSeconds: 15,
    retryIntervalMs: 2000,
    renewDeadlineMs: 10_000,
    ...options,
  };
  const log = o.log.with({ component: "leader-election" });
  let observed: { key: string; at: number } | undefined;

  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const now = Date.now();
    const raw = await o.client.get(LeaseType, o.name, o.namespace);
    if (raw === undefined) {
      try {
        await o.client.create(LeaseType, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: o.name, namespace: o.namespace },
          spec: {
            holderIdentity: o.identity,
            leaseDurationSeconds: o.leaseDurationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (error) {
        if (error instanceof KubeApiError && error.isConflict()) return false;
        throw error;
      }
    }
    const lease: Lease = Lease.parse(raw);
    const spec = lease.spec;
    const key = `${spec.holderIdentity ?? ""}|${spec.renewTime ?? ""}`;
    if (observed?.key !== key) observed = { key, at: now };
    const holder = spec.holderIdentity ?? "";
    const duration = (spec.leaseDurationSeconds ?? o.leaseDurationSeconds) * 1000;
    if (holder !== "" && holder !== o.identity && now - observed.at < duration) return false;
    const mine = holder === o.identity;
    try {
      await o.client.replace(LeaseType, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name: o.name,
          namespace: o.namespace,
          resourceVersion: lease.metadata.resourceVersion,
        },
        spec: {
          holderIdentity: o.identity,
          leaseDurationSeconds: o.leaseDurationSeconds,
          acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(now),
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
        },
      });
      if (!mine && holder !== "") {
        log.info(`Took over the lease from ${holder}, which stopped renewing it`);
      }
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.isConflict()) return false;
      throw error;
    }
  };

  const attempt = async (): Promise<boolean> => {
    try {
      return await tryAcquireOrRenew();
    } catch (error) {
      log.warn(`Could not reach the lease ${o.namespace}/${o.name}: ${(error as Error).message}`);
      return false;
    }
  };

  log.info(`Waiting to lead (lease ${o.namespace}/${o.name}, identity ${o.identity})`);
  while (!signal.aborted && !(await attempt())) await sleep(o.retryIntervalMs, signal);
  if (signal.aborted) return "stopped";

  log.info(`Became the leader (lease ${o.namespace}/${o.name})`);
  const leadership = new AbortController();
  const stopLeading = () => leadership.abort();
  signal.addEventListener("abort", stopLeading);
  let outcome: ElectionOutcome = "stopped";
  const leading = lead(leadership.signal).finally(() => leadership.abort());
  let lastRenew = Date.now();
  while (!leadership.signal.aborted) {
    await sleep(o.retryIntervalMs, leadership.signal);
    if (leadership.signal.aborted) break;
    if (await attempt()) lastRenew = Date.now();
    else if (Date.now() - lastRenew > o.renewDeadlineMs) {
      log.error("Lost the leadership: the lease could not be renewed in time; stopping all writes");
      outcome = "lost";
      leadership.abort();
    }
  }
  signal.removeEventListener("abort", stopLeading);
  await leading;
  if (outcome === "stopped") await release(o, log);
  return outcome;
}

/** Hands the lease back so a standby need not wait a whole lease duration. */
async function release(
  o: Required<Omit<LeaderElectionOptions, "log">> & { log: Logger },
  log: Logger,
): Promise<void> {
  try {
    const raw = await o.client.get(LeaseType, o.name, o.namespace);
    if (raw === undefined) return;
    const lease = Lease.parse(raw);
    if (lease.spec.holderIdentity !== o.identity) return;
    await o.client.replace(LeaseType, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: o.name,
        namespace: o.namespace,
        resourceVersion: lease.metadata.resourceVersion,
      },
      spec: {
        ...lease.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        renewTime: microTime(Date.now()),
      },
    });
    log.info("Released the lease");
  } catch (error) {
    log.warn(`Could not release the lease: ${(error as Error).message}`);
  }
}
