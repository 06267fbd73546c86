import assert from "node:assert/strict";
import { KubeApiError, KubeClient } from "../adapters/kube/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { captureLogger, createNamespace, grantToOperatorTestUser } from "../testing/kube.ts";
import { type LeaseRecord, LeaseStoreError } from "./lease_store.ts";
import { KubeLeaseStore, OPERATOR_LEASE_NAME } from "./kube_lease.ts";
import { LeaseType } from "./kube_resources.ts";
import { OPERATOR_LEASE_RULES } from "./helm_chart.ts";
import { electionTimings, runAsLeader } from "./leader_election.ts";

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

/** Whether `error` is a LeaseStoreError for a call RBAC refused. */
function forbidden(error: unknown): boolean {
  return error instanceof LeaseStoreError && error.cause instanceof KubeApiError &&
    error.cause.isForbidden();
}

Deno.test("The operator leads with only the Helm chart's Lease rights, on a real API server", async (t) => {
  await using kube = await startKubeApiServer();
  using admin = new KubeClient(kube.adminConfig);
  // A user with no rights but the chart's Role (OPERATOR_LEASE_RULES).
  using operator = new KubeClient(kube.operatorConfig);
  const namespace = await createNamespace(admin, "lease-rbac");
  await grantToOperatorTestUser(admin, namespace, "leader-election", OPERATOR_LEASE_RULES);
  const store = new KubeLeaseStore(operator, { namespace, name: OPERATOR_LEASE_NAME });
  const holder = async () =>
    (await admin.get<{ spec: Record<string, unknown> }>(LeaseType, OPERATOR_LEASE_NAME, namespace))
      ?.spec;

  await t.step("it may not create the Lease, and is told who does", async () => {
    // Reading the missing Lease is allowed once the authorizer has seen the binding.
    await waitFor("the RoleBinding to take effect", async () => {
      try {
        return (await store.get()) === undefined;
      } catch (error) {
        if (forbidden(error)) return undefined;
        throw error;
      }
    });
    const refused = await store.create(record("op-a")).then(() => undefined, (e: unknown) => e);
    assert.ok(forbidden(refused), String(refused));
    assert.match(
      (refused as Error).message,
      /^Cannot create the Lease lease-rbac-.* in Kubernetes: .*forbidden.*; the operator may only read and renew this Lease, which the Helm chart creates: run helm upgrade to put it back$/,
    );
  });

  await t.step("with the Lease the chart creates, it wins, renews and releases it", async () => {
    await admin.create(LeaseType, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: OPERATOR_LEASE_NAME, namespace },
    });
    const { logger, lines } = captureLogger();
    const stop = new AbortController();
    let renewals = 0;
    const outcome = await runAsLeader(
      { store, identity: "op-a", log: logger, ...electionTimings(2) },
      stop.signal,
      async () => {
        const won = await waitFor("op-a to hold the Lease", async () => {
          const spec = await holder();
          return spec?.["holderIdentity"] === "op-a" && spec["renewTime"];
        });
        // Two renewals, each an update of the Lease by name.
        let last = won;
        for (; renewals < 2; renewals++) {
          last = await waitFor("a renewal", async () => {
            const renewed = (await holder())?.["renewTime"];
            return renewed !== last && renewed;
          });
        }
      },
    );
    assert.equal(outcome, "stopped", lines.join("\n"));
    assert.equal(renewals, 2);
    assert.ok(!lines.some((line) => /WARN|ERROR/i.test(line)), lines.join("\n"));
    assert.equal((await holder())?.["holderIdentity"], "", "released");
  });

  await t.step("its rights reach no other Lease", async () => {
    const other = new KubeLeaseStore(operator, { namespace, name: "someone-else" });
    const read = await other.get().then(() => undefined, (e: unknown) => e);
    assert.ok(forbidden(read), String(read));
    await admin.create(LeaseType, { metadata: { name: "someone-else", namespace }, spec: {} });
    const revision = (await new KubeLeaseStore(admin, { namespace, name: "someone-else" }).get())!
      .revision;
    const write = await other.update(record("op-a"), revision).then(() => undefined, (e) => e);
    assert.ok(forbidden(write), String(write));
  });
});
