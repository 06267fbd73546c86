import assert from "node:assert/strict";
import { KubeClient } from "../adapters/kube/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { createNamespace } from "../testing/kube.ts";
import type { LeaseRecord } from "./lease_store.ts";
import { KubeLeaseStore } from "./kube_lease.ts";
import { LeaseType } from "./kube_resources.ts";

function record(holder: string): LeaseRecord {
  return {
    holderIdentity: holder,
    leaseDurationSeconds: 4,
    acquireTime: "2026-01-01T00:00:00.123Z",
    renewTime: "2026-01-01T00:00:01.456Z",
    leaseTransitions: 2,
  };
}

Deno.test("KubeLeaseStore on a real API server: create and update are compare-and-set", async (t) => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  const namespace = await createNamespace(client, "lease");
  const a = new KubeLeaseStore(client, { namespace, name: "fleet-operator" });
  const b = new KubeLeaseStore(client, { namespace, name: "fleet-operator" });

  await t.step("a missing Lease reads as none", async () => {
    assert.equal(await a.get(), undefined);
    assert.equal(a.description, `Lease ${namespace}/fleet-operator`);
  });

  await t.step("create() writes once; a second create conflicts", async () => {
    const results = await Promise.all([a.create(record("op-a")), b.create(record("op-b"))]);
    assert.deepEqual(results.map((r) => r.outcome).sort(), ["conflict", "written"]);
    assert.deepEqual(await a.create(record("op-a")), { outcome: "conflict" });
  });

  await t.step(
    "update() names the resourceVersion it replaces; a stale one conflicts",
    async () => {
      const seen = (await a.get())!;
      // A real change: replacing a Lease with what it already holds (whichever create won the
      // race above) writes nothing and keeps its resourceVersion, so `seen` would not be stale.
      const renewed = await a.update(
        { ...record("op-a"), renewTime: "2026-01-01T00:00:02.789Z" },
        seen.revision,
      );
      assert.equal(renewed.outcome, "written");
      assert.equal(renewed.outcome === "written" && renewed.revision, (await b.get())?.revision);
      assert.deepEqual(await b.update(record("op-b"), seen.revision), { outcome: "conflict" });
      const current = (await b.get())!;
      const race = await Promise.all([
        a.update(record("op-a"), current.revision),
        b.update(record("op-b"), current.revision),
      ]);
      assert.deepEqual(race.map((r) => r.outcome).sort(), ["conflict", "written"]);
    },
  );

  await t.step("the Lease reads as client-go writes it, with MicroTime", async () => {
    const raw = await client.get<{ spec: Record<string, unknown> }>(
      LeaseType,
      "fleet-operator",
      namespace,
    );
    assert.equal(raw?.spec.leaseDurationSeconds, 4);
    assert.equal(raw?.spec.acquireTime, "2026-01-01T00:00:00.123000Z");
    assert.equal(raw?.spec.renewTime, "2026-01-01T00:00:01.456000Z");
    assert.equal(raw?.spec.leaseTransitions, 2);
  });

  await t.step("a Lease made by hand with an empty spec reads as released", async () => {
    await client.create(LeaseType, { metadata: { name: "bare", namespace }, spec: {} });
    const bare = await new KubeLeaseStore(client, { namespace, name: "bare" }).get();
    assert.deepEqual(bare?.record, {
      holderIdentity: "",
      leaseDurationSeconds: 15,
      acquireTime: "",
      renewTime: "",
      leaseTransitions: 0,
    });
  });
});
