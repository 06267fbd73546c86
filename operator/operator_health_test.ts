/**
 * The operator's /healthz, /readyz and /metrics over HTTP, against a real nats-server: not
 * ready before its initial read or while NATS is down, and the fleet's numbers in /metrics.
 */
import assert from "node:assert/strict";
import { API_VERSION, Deployment } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { serveHealth } from "../adapters/health_server.ts";
import { MetricsRegistry, registerBuildInfo } from "../adapters/metrics.ts";
import { ConnectionState } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { eventually } from "../testing/eventually.ts";
import { testConnection } from "../testing/nats.ts";
import { registerTestDevice, testDeviceInfo } from "../testing/devices.ts";
import { createOperator } from "./operator.ts";
import { OperatorHealth } from "./operator_health.ts";
import { registerOperatorMetrics } from "./operator_metrics.ts";

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

Deno.test("the operator is ready once it has read the fleet, not while NATS is down, and /metrics counts the fleet", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const health = new OperatorHealth(new ConnectionState(nc));
  const metrics = new MetricsRegistry();
  registerBuildInfo(metrics, "1.2.3-test");
  const reconciled = registerOperatorMetrics(metrics, health);
  const stopServer = new AbortController();
  const server = serveHealth({
    port: 0,
    hostname: "127.0.0.1",
    notReady: () => health.notReady(),
    metrics,
    log: silentLogger,
    signal: stopServer.signal,
  });
  const stopOperator = new AbortController();
  let running: Promise<void> | undefined;
  try {
    assert.deepEqual(await get(server.port, "/healthz"), { status: 200, body: "ok\n" });
    // A standby waiting for the lease is ready: it is what a rolling update waits for.
    assert.equal((await get(server.port, "/readyz")).status, 200);
    assert.match((await get(server.port, "/metrics")).body, /^fleet_operator_leader 0$/m);

    const operator = createOperator({
      nc,
      log: silentLogger,
      replicas: 1,
      allowUnboundNamespaces: true,
      reconciled,
    });
    health.leadWith(operator);
    assert.deepEqual(await get(server.port, "/readyz"), {
      status: 503,
      body: "not ready: reading the fleet's current state\n",
    });
    running = operator.run(stopOperator.signal);
    await operator.ready;
    assert.deepEqual(await get(server.port, "/readyz"), { status: 200, body: "ready\n" });

    using _device = await registerTestDevice(nc, testDeviceInfo("d1", { site: "a" }));
    await new NatsDeploymentStore(nc, silentLogger, 1).apply(Deployment.parse({
      apiVersion: API_VERSION,
      kind: "Deployment",
      metadata: { name: "web", namespace: "shop" },
      spec: {
        targetSelector: { matchLabels: { site: "a" } },
        score: {
          type: "PodmanV0",
          data: { services: [{ name: "main", image: "registry.local/web:v1" }] },
        },
      },
    }));
    const scraped = await eventually("the device and the deployment in /metrics", async () => {
      const { status, body } = await get(server.port, "/metrics");
      assert.equal(status, 200);
      return body.includes(
          'fleet_deployment_matched_devices{namespace="shop",deployment="web"} 1',
        ) &&
          body.includes('fleet_operator_reconcile_errors_total{controller="status"} 0')
        ? body
        : undefined;
    });
    for (
      const line of [
        "# TYPE fleet_build_info gauge",
        `fleet_build_info{version="1.2.3-test",deno="${Deno.version.deno}"} 1`,
        "fleet_operator_leader 1",
        'fleet_devices{reachability="reachable"} 1',
        'fleet_devices{reachability="unreachable"} 0',
        "fleet_deployments 1",
        'fleet_deployment_pending_devices{namespace="shop",deployment="web"} 1',
        'fleet_deployment_succeeded_devices{namespace="shop",deployment="web"} 0',
        'fleet_deployment_failed_devices{namespace="shop",deployment="web"} 0',
        'fleet_deployment_unreachable_devices{namespace="shop",deployment="web"} 0',
        "# TYPE fleet_operator_kv_writes_total counter",
        "fleet_operator_kv_write_errors_total 0",
        "# TYPE fleet_operator_reconcile_duration_seconds histogram",
        'fleet_operator_reconcile_errors_total{controller="targeting"} 0',
      ]
    ) assert.ok(scraped.split("\n").includes(line), `${line} in:\n${scraped}`);
    assert.match(scraped, /^fleet_operator_kv_writes_total\{operation="desired_put"\} [1-9]/m);
    for (const controller of ["targeting", "status"]) {
      assert.match(
        scraped,
        new RegExp(
          `^fleet_operator_reconcile_duration_seconds_count\\{controller="${controller}"\\} [1-9]`,
          "m",
        ),
      );
    }
    assert.doesNotMatch(scraped, /d1/, "no per-device label");

    await ns.stop();
    await eventually("/readyz 503 while NATS is down", async () => {
      const { status, body } = await get(server.port, "/readyz");
      return status === 503 && body === "not ready: not connected to NATS\n";
    });
    assert.equal((await get(server.port, "/healthz")).status, 200);
    await ns.restart();
    await eventually("/readyz 200 once reconnected", async () => {
      return (await get(server.port, "/readyz")).status === 200;
    });
  } finally {
    stopOperator.abort();
    await running?.catch(() => {});
    health.standBy();
    stopServer.abort();
    await server.finished;
  }
});
