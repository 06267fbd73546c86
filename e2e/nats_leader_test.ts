/**
 * High availability without Kubernetes: two `fleet operator run --source nats --leader-elect`
 * replicas share one nats-server and compete for the lease in the `fleet-leases` bucket. Only
 * the holder writes desired state; the leader is killed, the standby takes over once the lease
 * has gone unrenewed for its whole duration, and the hand-over loses and duplicates nothing.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Buckets, keys } from "../core/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { NatsLeaseStore } from "../operator/mod.ts";
import { registerTestDevice, testDeviceInfo } from "../testing/devices.ts";
import { waitFor } from "../adapters/timers.ts";
import { webDeployment } from "./_helpers.ts";
import { type OperatorReplica, startOperatorReplica } from "./_operator_replica.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LEASE_SECONDS = 3;

story(
  "nats leader election: only the holder writes; the standby takes over a killed leader after the lease expires",
  async () => {
    await using nats = stopOnDeadline(await startNatsServer());
    const log = testLogger();
    const nc = await connectNats({
      servers: [nats.url],
      credentials: noCredentials(),
      name: "t",
      logger: log,
    });
    const replicas = new Map<string, OperatorReplica>();
    try {
      using _device = await registerTestDevice(nc, testDeviceInfo("dev-1", { site: "lab" }));
      for (const identity of ["op-a", "op-b"]) {
        replicas.set(
          identity,
          startOperatorReplica(identity, [
            "--source",
            "nats",
            "--nats-url",
            nats.url,
            "--lease-duration",
            String(LEASE_SECONDS),
          ], log),
        );
      }
      const lease = new NatsLeaseStore(nc, { replicas: 1 });
      const holder = async () => (await lease.get())?.record.holderIdentity;
      const leader = await waitFor("a leader", async () => {
        const h = await holder();
        return h === "op-a" || h === "op-b" ? h : undefined;
      }, 60_000);
      const standby = leader === "op-a" ? "op-b" : "op-a";

      const store = new NatsDeploymentStore(nc, log);
      await store.apply(webDeployment({ name: "web", selector: { matchLabels: { site: "lab" } } }));
      await store.apply(webDeployment({ name: "api", selector: { matchLabels: { site: "lab" } } }));
      const desired = await new Kvm(nc).open(Buckets.desiredState);
      const apiKey = keys.desiredState("dev-1", { namespace: "default", name: "api" });
      const webKey = keys.desiredState("dev-1", { namespace: "default", name: "web" });
      const apiRevision = await waitFor(
        "api's key",
        async () => (await desired.get(apiKey))?.revision,
      );
      await waitFor("web's key", async () => (await desired.get(webKey))?.revision);
      // Every write to desired-state is a message of its stream: one per key means the
      // standby wrote nothing and the leader wrote each key once.
      const jsm = await jetstreamManager(nc);
      const writes = async () =>
        (await jsm.streams.info(`KV_${Buckets.desiredState}`)).state.last_seq;
      assert.equal(await writes(), 2, "two keys, written once each");
      assert.equal(await holder(), leader, "the lease stayed with the first leader");
      assert.equal(replicas.get(standby)!.exited, undefined, "the standby runs");

      // The leader dies without a word: no release, the standby must wait the lease out (how
      // long exactly is the election's own unit test, on a fake clock).
      const killedAt = performance.now();
      replicas.get(leader)!.child.kill("SIGKILL");
      await replicas.get(leader)!.child.status;
      await waitFor(
        "the standby to take the lease",
        async () => (await holder()) === standby || undefined,
        60_000,
        50,
      );
      log.info(
        `leader failover: ${((performance.now() - killedAt) / 1000).toFixed(2)} s after the ` +
          `kill (lease duration ${LEASE_SECONDS} s)`,
      );
      assert.equal((await lease.get())?.record.leaseTransitions, 1);

      // The new leader carries on: a change converges, what did not change is not rewritten.
      await store.apply(
        webDeployment({ name: "web", selector: { matchLabels: { site: "lab" } }, tag: "v2" }),
      );
      await waitFor("web's key to carry generation 2", async () => {
        const entry = await desired.get(webKey);
        return entry && JSON.parse(new TextDecoder().decode(entry.value)).generation === 2 ||
          undefined;
      }, 30_000);
      assert.equal(
        (await desired.get(apiKey))?.revision,
        apiRevision,
        "api's key was not rewritten",
      );
      await waitFor("status from the new leader", async () => {
        const row = (await store.deployments()).find((r) => r.deployment.metadata.name === "web");
        return row?.status?.observedGeneration === 2 || undefined;
      }, 30_000);
      assert.equal(await writes(), 3, "one more write in all: web's new generation");

      // A clean stop hands the lease back at once instead of letting it expire.
      const survivor = replicas.get(standby)!;
      survivor.child.kill("SIGTERM");
      assert.equal((await survivor.child.status).code, 0);
      assert.equal(await holder(), "", "released on a clean stop");
    } finally {
      for (const replica of replicas.values()) await replica[Symbol.asyncDispose]();
      await nc.close();
    }
  },
);
