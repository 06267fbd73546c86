import assert from "node:assert/strict";
import { bucketLimits } from "../core/limits.ts";
import { Buckets, buildDeployment, Heartbeat, keys } from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { ensureBucket, isMaxPayloadExceeded } from "../adapters/nats/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { testConnection } from "../testing/nats.ts";
import {
  ConcurrentUpdateError,
  DeploymentTooLargeError,
  NatsDeploymentStore,
} from "./nats_store.ts";

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

Deno.test("NatsDeploymentStore.apply() reports a concurrent change only after losing every round of a real race", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const store = new NatsDeploymentStore(nc, silentLogger);
  // Thirty writers at once: each round one wins, so some lose all five of theirs.
  const results = await Promise.allSettled(
    Array.from({ length: 30 }, (_, n) => store.apply(web(`localhost/web:${n}`))),
  );
  const lost = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
  const won = results.flatMap((r) => r.status === "fulfilled" ? [r.value.generation] : []);
  assert.ok(lost.length > 0, "some writer lost every round");
  for (const error of lost) {
    assert.ok(error instanceof ConcurrentUpdateError, String(error));
    assert.match(error.message, /^Deployment default\/web kept changing while it was applied/);
  }
  assert.deepEqual(won.sort((a, b) => a - b), won.map((_, i) => i + 1), "no generation lost");
});

/** Bytes of the value apply() stores for `deployment` (its timestamp has a fixed length). */
function storedBytes(deployment: ReturnType<typeof web>): number {
  const value = {
    ...deployment,
    metadata: {
      ...deployment.metadata,
      generation: 1,
      creationTimestamp: new Date().toISOString(),
    },
  };
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

Deno.test("NatsDeploymentStore.apply() refuses a deployment larger than the server's max_payload, with both sizes", async () => {
  await using ns = await startNatsServer({ extraConfig: "max_payload: 4096\n" });
  await using nc = await testConnection(ns.url);
  assert.equal(nc.info?.max_payload, 4096, "the limit the server announces");
  const store = new NatsDeploymentStore(nc, silentLogger);
  const big = web("localhost/web:1", [`BIG=${"é".repeat(2500)}`]);
  await assert.rejects(store.apply(big), (error: unknown) => {
    assert.ok(error instanceof DeploymentTooLargeError, String(error));
    assert.equal(error.kind, "usage");
    assert.equal(error.bytes, storedBytes(big), "UTF-8 bytes");
    assert.equal(error.limit, 4096);
    assert.match(
      error.message,
      new RegExp(
        `^Deployment default/web is ${
          storedBytes(big)
        } bytes as stored; .* at most 4096 bytes.*max_payload`,
      ),
    );
    return true;
  });
  // Refused before anything was written.
  const kv = await ensureBucket(nc, Buckets.deployments, { replicas: 1, history: 1 });
  assert.equal(await kv.get(keys.deployment({ namespace: "default", name: "web" })), null);
});

Deno.test("NatsDeploymentStore.apply() refuses a deployment larger than the deployments bucket keeps, naming its limit", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const store = new NatsDeploymentStore(nc, silentLogger);
  const limit = bucketLimits(Buckets.deployments).maxValueSize;
  const quarter = "x".repeat(limit / 4);
  const big = web("localhost/web:1", [1, 2, 3, 4].map((i) => `BIG${i}=${quarter}`));
  assert.ok(storedBytes(big) < (nc.info?.max_payload ?? 0), "within the server's max_payload");
  await assert.rejects(store.apply(big), (error: unknown) => {
    assert.ok(error instanceof DeploymentTooLargeError, String(error));
    assert.equal(error.limit, limit);
    assert.match(error.message, /Fleet keeps deployments of at most 262144 bytes/);
    return true;
  });
  const kv = await ensureBucket(nc, Buckets.deployments, { replicas: 1, history: 1 });
  assert.equal(await kv.get(keys.deployment({ namespace: "default", name: "web" })), null);
});

Deno.test("NatsDeploymentStore.apply() names the broker's refusal of a message too large with its headers, not a race", async () => {
  await using ns = await startNatsServer({ extraConfig: "max_payload: 4096\n" });
  await using nc = await testConnection(ns.url);
  const store = new NatsDeploymentStore(nc, silentLogger);
  // Within max_payload alone, so the size check lets it through; the KV headers push the
  // message over, and the NATS client refuses it.
  const padding = (n: number) => web("localhost/web:1", [`PAD=${"x".repeat(n)}`]);
  const target = 4096 - 8;
  const justUnder = padding(target - storedBytes(padding(0)));
  assert.equal(storedBytes(justUnder), target);
  for (const existing of [false, true]) {
    // kv.create for a new deployment, kv.update for an existing one.
    if (existing) await store.apply(web("localhost/web:0"));
    await assert.rejects(store.apply(justUnder), (error: unknown) => {
      assert.ok(error instanceof DeploymentTooLargeError, String(error));
      assert.ok(isMaxPayloadExceeded(error.cause), String(error.cause));
      assert.match(
        error.message,
        /is 4088 bytes as stored; .* at most 4096 bytes, headers included/,
      );
      return true;
    });
  }
});
