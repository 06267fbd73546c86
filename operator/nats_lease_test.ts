import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { LEASE_BUCKET, type LeaseRecord, OPERATOR_LEASE_KEY } from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { eventually } from "../testing/eventually.ts";
import { testConnection } from "../testing/nats.ts";
import { LeaseStoreError } from "./lease_store.ts";
import { NatsLeaseStore } from "./nats_lease.ts";
import { runAsLeader } from "./leader_election.ts";

function record(holder: string, transitions = 0): LeaseRecord {
  return {
    holderIdentity: holder,
    leaseDurationSeconds: 15,
    acquireTime: "2026-01-01T00:00:00.000Z",
    renewTime: "2026-01-01T00:00:00.000Z",
    leaseTransitions: transitions,
  };
}

Deno.test("NatsLeaseStore creates its bucket (history 1) on first use; a new lease reads as none", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const store = new NatsLeaseStore(nc, { replicas: 1 });
  assert.equal(await store.get(), undefined);
  const status = await (await new Kvm(nc).open(LEASE_BUCKET)).status();
  assert.equal(status.history, 1);
  assert.equal(status.replicas, 1);
  assert.equal(
    store.description,
    `lease "${OPERATOR_LEASE_KEY}" in the NATS bucket "fleet-leases"`,
  );
});

Deno.test("NatsLeaseStore.create() writes once; a second create, from any replica, conflicts", async () => {
  await using ns = await startNatsServer();
  await using n1 = await testConnection(ns.url);
  await using n2 = await testConnection(ns.url);
  const a = new NatsLeaseStore(n1, { replicas: 1 });
  const b = new NatsLeaseStore(n2, { replicas: 1 });
  const results = await Promise.all([a.create(record("op-a")), b.create(record("op-b"))]);
  assert.deepEqual(results.map((r) => r.outcome).sort(), ["conflict", "written"]);
  const winner = results[0]!.outcome === "written" ? "op-a" : "op-b";
  const stored = await b.get();
  assert.equal(stored?.record.holderIdentity, winner);
  const written = results.find((r) => r.outcome === "written");
  assert.equal(written?.outcome === "written" && written.revision, stored?.revision);
  assert.deepEqual(await a.create(record("op-a")), { outcome: "conflict" });
});

Deno.test("NatsLeaseStore.update() is compare-and-set: of two writers on one revision, one conflicts", async () => {
  await using ns = await startNatsServer();
  await using n1 = await testConnection(ns.url);
  await using n2 = await testConnection(ns.url);
  const a = new NatsLeaseStore(n1, { replicas: 1 });
  const b = new NatsLeaseStore(n2, { replicas: 1 });
  await a.create(record("op-a"));
  const seen = (await a.get())!;
  const renewed = await a.update(record("op-a"), seen.revision);
  assert.equal(renewed.outcome, "written");
  assert.notEqual(renewed.outcome === "written" && renewed.revision, seen.revision);
  // b still holds the revision it read before a's renewal: stale.
  assert.deepEqual(await b.update(record("op-b", 1), seen.revision), { outcome: "conflict" });

  const current = (await b.get())!;
  const race = await Promise.all([
    a.update(record("op-a"), current.revision),
    b.update(record("op-b", 1), current.revision),
  ]);
  assert.deepEqual(race.map((r) => r.outcome).sort(), ["conflict", "written"]);
});

Deno.test("NatsLeaseStore: a deleted lease reads as none and is created again by exactly one replica", async () => {
  await using ns = await startNatsServer();
  await using n1 = await testConnection(ns.url);
  await using n2 = await testConnection(ns.url);
  const a = new NatsLeaseStore(n1, { replicas: 1 });
  const b = new NatsLeaseStore(n2, { replicas: 1 });
  await a.create(record("op-a"));
  await (await new Kvm(n1).open(LEASE_BUCKET)).delete(OPERATOR_LEASE_KEY);
  assert.equal(await b.get(), undefined);
  const results = await Promise.all([a.create(record("op-a")), b.create(record("op-b"))]);
  assert.deepEqual(results.map((r) => r.outcome).sort(), ["conflict", "written"]);
});

Deno.test("NatsLeaseStore.get() of an unreadable lease fails with a LeaseStoreError saying how to clear it", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  const store = new NatsLeaseStore(nc, { replicas: 1, key: "broken" });
  await store.get(); // creates the bucket
  await (await new Kvm(nc).open(LEASE_BUCKET)).put("broken", "{not json");
  await assert.rejects(store.get(), (error: unknown) => {
    assert.ok(error instanceof LeaseStoreError);
    assert.match(error.message, /lease "broken"/);
    assert.match(error.message, /nats kv del fleet-leases broken/);
    return true;
  });
  await assert.rejects(store.update(record("x"), "abc"), /"abc" is not a KV revision/);
});

Deno.test("runAsLeader() over NATS: one of two replicas leads; the other takes over when it stops", async () => {
  await using ns = await startNatsServer();
  await using n1 = await testConnection(ns.url);
  await using n2 = await testConnection(ns.url);
  const log = createLogger({ write: () => {} });
  const leading = new Set<string>();
  const stops = new Map<string, AbortController>();
  const replica = (identity: string, nc: NatsConnection) => {
    const stop = new AbortController();
    stops.set(identity, stop);
    return runAsLeader(
      {
        store: new NatsLeaseStore(nc, { replicas: 1 }),
        identity,
        log,
        leaseDurationSeconds: 30,
        retryIntervalMs: 100,
        renewDeadlineMs: 20_000,
      },
      stop.signal,
      (signal) =>
        new Promise((resolve) => {
          leading.add(identity);
          signal.addEventListener("abort", () => {
            leading.delete(identity);
            resolve();
          });
        }),
    );
  };
  try {
    const runs = [replica("op-a", n1), replica("op-b", n2)];
    await eventually("a leader", () => leading.size > 0);
    const first = [...leading][0]!;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual([...leading], [first], "one leader only");
    stops.get(first)!.abort();
    const second = first === "op-a" ? "op-b" : "op-a";
    // Released: well within the 30 s lease duration.
    await eventually(`${second} to lead`, () => leading.has(second), 5000);
    const lease = await new NatsLeaseStore(n1, { replicas: 1 }).get();
    assert.equal(lease?.record.holderIdentity, second);
    assert.equal(lease?.record.leaseTransitions, 1);
    stops.get(second)!.abort();
    assert.deepEqual(await Promise.all(runs), ["stopped", "stopped"]);
  } finally {
    for (const stop of stops.values()) stop.abort();
  }
});
