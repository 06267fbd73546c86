/**
 * The callout's /readyz and /metrics over HTTP, on a real nats-server with auth callout:
 * ready while subscribed and connected, decisions counted and timed by result.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../adapters/logger.ts";
import { serveHealth } from "../adapters/health_server.ts";
import { MetricsRegistry } from "../adapters/metrics.ts";
import { startCalloutFixture } from "../testing/callout.ts";
import { eventually } from "../testing/eventually.ts";

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

Deno.test("the callout is ready while it answers, and /metrics counts and times its decisions", async () => {
  const metrics = new MetricsRegistry();
  await using t = await startCalloutFixture(true, "configured", metrics);
  const stop = new AbortController();
  const server = serveHealth({
    port: 0,
    hostname: "127.0.0.1",
    notReady: () => t.service.notReady(),
    metrics,
    log: silentLogger,
    signal: stop.signal,
  });
  try {
    assert.deepEqual(await get(server.port, "/readyz"), { status: 200, body: "ready\n" });

    const device = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
    await device.close();
    await assert.rejects(t.connectAs(await t.mint("dev-b", ["nobody"])));
    const scraped = (await get(server.port, "/metrics")).body.split("\n");
    for (
      const line of [
        "# TYPE fleet_callout_authorizations_total counter",
        'fleet_callout_authorizations_total{result="allowed"} 1',
        'fleet_callout_authorizations_total{result="refused"} 1',
        'fleet_callout_authorizations_total{result="dropped"} 0',
        "# TYPE fleet_callout_authorization_duration_seconds histogram",
        'fleet_callout_authorization_duration_seconds_count{result="allowed"} 1',
        'fleet_callout_authorization_duration_seconds_count{result="refused"} 1',
        'fleet_callout_authorization_duration_seconds_bucket{result="allowed",le="+Inf"} 1',
      ]
    ) assert.ok(scraped.includes(line), `${line} in:\n${scraped.join("\n")}`);

    await t.ns.stop();
    await eventually("/readyz 503 while NATS is down", async () => {
      const { status, body } = await get(server.port, "/readyz");
      return status === 503 && body === "not ready: not connected to NATS\n";
    });
    await t.ns.restart();
    await eventually("/readyz 200 once reconnected", async () => {
      return (await get(server.port, "/readyz")).status === 200;
    });

    await t.service.stop();
    assert.deepEqual(await get(server.port, "/readyz"), {
      status: 503,
      body: "not ready: not subscribed to authorization requests\n",
    });
  } finally {
    stop.abort();
    await server.finished;
  }
});
