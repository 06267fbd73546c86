import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { silentLogger } from "../adapters/logger.ts";
import { ensureBucketRetrying } from "../adapters/nats/buckets.ts";
import { startNatsCluster } from "./nats_cluster.ts";

Deno.test("startNatsCluster() runs 3 routed servers with replicated KV that survives one server down", async () => {
  await using cluster = await startNatsCluster();
  assert.equal(cluster.servers.length, 3);
  assert.equal(cluster.urls.length, 3);
  assert.equal(new Set(cluster.urls).size, 3);
  for (const [i, s] of cluster.servers.entries()) {
    assert.match(await Deno.readTextFile(`${s.storeDir}/nats-server.conf`), /server_name: "n\d"/);
    assert.match(await s.logTail(1000), new RegExp(`n${i + 1}`));
  }

  const nc = await connect({ servers: cluster.urls, reconnectTimeWait: 100 });
  try {
    const jsm = await jetstreamManager(nc);
    // A cluster that has just formed may refuse R3 placement for a moment; the operator retries.
    const kv = await ensureBucketRetrying(nc, "r3", { replicas: 3, history: 1 }, {
      signal: AbortSignal.timeout(60_000),
      logger: silentLogger,
    });
    assert.ok(kv, "the r3 bucket within a minute");
    await kv.put("a", "1");
    const info = await jsm.streams.info("KV_r3");
    assert.equal(info.config.num_replicas, 3);
    assert.equal(info.cluster?.name, "fleet");

    const port = cluster.servers[0]!.port;
    await cluster.servers[0]!.kill();
    assert.equal(cluster.servers[0]!.running, false);
    await cluster.waitReady({ streams: ["KV_r3"] });
    await kv.put("b", "2");
    assert.equal((await kv.get("a"))?.string(), "1");

    await cluster.servers[0]!.restart();
    assert.equal(cluster.servers[0]!.port, port, "restart keeps the client port");
    await cluster.waitReady({ streams: ["KV_r3"] });
    assert.equal((await kv.get("b"))?.string(), "2");
  } finally {
    await nc.close();
  }
});
