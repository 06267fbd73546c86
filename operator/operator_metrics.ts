/**
 * The operator's Prometheus metrics, read at scrape time from the operator leading now.
 * A standby has no view of the fleet: it exposes only build info and leader status.
 */

import type { MetricsRegistry, Sample } from "../adapters/metrics.ts";
import { isStale } from "../core/mod.ts";
import type { Operator } from "./operator.ts";
import type { ReconcileObserver } from "./operator_stats.ts";

/** What the metrics read: the operator leading now (undefined on a standby or before it starts). */
export interface OperatorMetricsSource {
  current(): Operator | undefined;
  /** Whether this replica holds the lease (always true without leader election). */
  leading(): boolean;
}

type Count = "matchedDeviceCount" | "succeeded" | "failed" | "pending" | "unreachable";

const DEPLOYMENT_COUNTS: readonly [Count, string, string][] = [
  ["matchedDeviceCount", "matched", "Devices the deployment's selector matches."],
  ["succeeded", "succeeded", "Matched devices running the current generation."],
  ["failed", "failed", "Matched devices that report a failure or were refused it."],
  ["pending", "pending", "Matched devices neither succeeded nor failed yet."],
  ["unreachable", "unreachable", "Matched devices silent for longer than --stale-after."],
];

/** Upper bounds of the reconcile duration buckets, in seconds. */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Registers the operator's metrics (names start with fleet_; no per-device label) and returns
 * what times the controllers' passes (OperatorOptions.reconciled), kept across leadership terms.
 */
export function registerOperatorMetrics(
  registry: MetricsRegistry,
  source: OperatorMetricsSource,
): ReconcileObserver {
  const withOperator = (read: (operator: Operator) => Sample[]) => () => {
    const operator = source.current();
    return operator ? read(operator) : [];
  };
  registry.gauge(
    "fleet_operator_leader",
    "1 while this replica holds the operator lease and writes, 0 on a standby.",
    () => [{ value: source.leading() ? 1 : 0 }],
  );
  registry.gauge(
    "fleet_devices",
    "Registered devices by reachability (heartbeat within --stale-after).",
    withOperator(({ view, clock, staleAfterMs }) => {
      const now = clock.now();
      let unreachable = 0;
      for (const deviceId of view.devices.keys()) {
        if (isStale(view.lastSeen.get(deviceId), now, staleAfterMs)) unreachable++;
      }
      return [
        { labels: { reachability: "reachable" }, value: view.devices.size - unreachable },
        { labels: { reachability: "unreachable" }, value: unreachable },
      ];
    }),
  );
  registry.gauge(
    "fleet_deployments",
    "Deployments the operator knows.",
    withOperator(({ view }) => [{ value: view.deployments.size }]),
  );
  for (const [field, state, help] of DEPLOYMENT_COUNTS) {
    registry.gauge(
      `fleet_deployment_${state}_devices`,
      help,
      withOperator(({ view, clock, staleAfterMs }) => {
        const now = clock.now();
        const samples: Sample[] = [];
        for (const [ref] of view.deployments) {
          const aggregate = view.aggregate(ref, now, staleAfterMs);
          if (!aggregate) continue;
          samples.push({
            labels: { namespace: ref.namespace, deployment: ref.name },
            value: aggregate[field],
          });
        }
        return samples;
      }),
    );
  }
  registry.counterFrom(
    "fleet_operator_kv_writes_total",
    "Successful writes to the desired-state and deployment-status buckets since this replica " +
      "last became leader, by operation.",
    withOperator(({ stats }) => [
      { labels: { operation: "desired_put" }, value: stats.desiredPuts },
      { labels: { operation: "desired_delete" }, value: stats.desiredDeletes },
      { labels: { operation: "status_write" }, value: stats.statusWrites },
    ]),
  );
  registry.counterFrom(
    "fleet_operator_kv_write_errors_total",
    "Failed desired-state and status write attempts (each retried) since this replica last " +
      "became leader.",
    withOperator(({ stats }) => [{ value: stats.writeErrors }]),
  );
  registry.counterFrom(
    "fleet_operator_buckets_recreated_total",
    "Buckets the operator found missing and created again since this replica last became leader.",
    withOperator(({ stats }) => [{ value: stats.bucketsRecreated }]),
  );
  const duration = registry.histogram(
    "fleet_operator_reconcile_duration_seconds",
    "Duration of reconcile passes by controller: targeting writes one deployment's desired " +
      "state, status writes the changed aggregates.",
    RECONCILE_BUCKETS,
  );
  const errors = registry.counter(
    "fleet_operator_reconcile_errors_total",
    "Reconcile passes in which a write failed (it is retried), by controller.",
  );
  return (controller, seconds, failed) => {
    duration.observe(seconds, { controller });
    // Counted at zero too, so the series exists before the first error.
    errors.inc({ controller }, failed ? 1 : 0);
  };
}
