import assert from "node:assert/strict";
import { Buckets, buildDeployment, Heartbeat, keys } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { ensureBucket } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { testConnection } from "../testing/nats.ts";
import { ConcurrentUpdateError, NatsDeploymentStore } from "./nats_store.ts";

const HOUR = 3_600_000;

Deno.test("NatsDeploymentStore.devices() gives LAST SEEN on the broker's clock, whatever the device's clock says", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const infos = await ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 });
  const beats = await ensureBucket(nc, Buckets.deviceHeartbeat, { replicas: 1, history: 1 });
  // nats-server runs on this machine: its clock is ours.
  const before = Date.now();
  const skews: Record<string, number> = { behind: -3 * HOUR, exact: 0, ahead: 3 * HOUR };
  for (const [id, skew] of Object.entries(skews)) {
    await infos.put(keys.deviceInfo(id), JSON.stringify(testDeviceInfo(id)));
    const hb = Heartbeat.parse({ deviceId: id, at: Date.now() + skew });
    await beats.put(keys.heartbeat(id), JSON.stringify(hb));
  }
  await infos.put(keys.deviceInfo("silent"), JSON.stringify(testDeviceInfo("silent")));
  const after = Date.now();

  const rows = await new NatsDeploymentStore(nc, silentLogger).devices();
  assert.deepEqual(rows.map((r) => r.info.deviceId), ["ahead", "behind", "exact", "silent"]);
  for (const row of rows.slice(0, 3)) {
    const seen = row.lastSeen ?? 0;
    assert.ok(seen >= before - 1 && seen <= after + 1, `${row.info.deviceId}: ${seen}`);
  }
  assert.equal(rows[3]?.lastSeen, undefined);
});

function web(image: string, env: string[] = []) {
  return buildDeployment({
    name: "web",
    namespace: "default",
    image,
    ports: [],
    env,
    volumes: [],
    selectors: ["site=lab"],
  });
}

Deno.test("NatsDeploymentStore.apply() retries a lost compare-and-set: concurrent applies each get a generation", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const store = new NatsDeploymentStore(nc, silentLogger);
  const results = await Promise.all(
    [1, 2, 3, 4].map((n) => store.apply(web(`localhost/web:${n}`))),
  );
  assert.deepEqual(results.map((r) => r.generation).sort(), [1, 2, 3, 4]);
  assert.deepEqual(
    results.map((r) => r.outcome).sort(),
    ["configured", "configured", "configured", "created"],
  );
});

Deno.test("NatsDeploymentStore.apply() gives up at once on a failure that is not a race", async () => {
  await using ns = await startNatsServer({ extraConfig: "max_payload: 4096\n" });
  await using nc = await testConnection(ns.url);
  const store = new NatsDeploymentStore(nc, silentLogger);
  await assert.rejects(
    store.apply(web("localhost/web:1", [`BIG=${"x".repeat(5000)}`])),
    (error: unknown) => {
      assert.ok(!(error instanceof ConcurrentUpdateError), String(error));
      assert.match(String(error), /payload/i);
      return true;
    },
  );
});
