/**
 * High availability with real processes: two `fleet operator run --source kube
 * --leader-elect` replicas; the leader is killed, the standby takes over within the lease
 * duration, and the hand-over loses and duplicates nothing.
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { Buckets, keys } from "../core/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, noCredentials } from "../adapters/nats/mod.ts";
import { labelTestDeviceObject, registerTestDevice, testDeviceInfo } from "../testing/devices.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { DeploymentType, installCrds, LeaseType } from "../operator/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import { webDeployment } from "./_helpers.ts";
import { type OperatorReplica, startOperatorReplica } from "./_operator_replica.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LEASE_SECONDS = 4;

interface Lease {
  spec: { holderIdentity?: string; leaseTransitions?: number };
}

story(
  "leader election: the standby takes over a killed leader; nothing lost or written twice",
  async () => {
    await using kube = stopOnDeadline(await startKubeApiServer());
    await using nats = stopOnDeadline(await startNatsServer());
    using client = new KubeClient(kube.adminConfig);
    const log = testLogger();
    await installCrds(client, log);
    const nc = await connectNats({
      servers: [nats.url],
      credentials: noCredentials(),
      name: "t",
      logger: log,
    });
    const replicas = new Map<string, OperatorReplica>();
    try {
      // On the kube source the registry is the Device object's labels, set by a person.
      await labelTestDeviceObject(client, "dev-1", { site: "lab" });
      using _device = await registerTestDevice(nc, testDeviceInfo("dev-1", { site: "lab" }));
      for (const identity of ["op-a", "op-b"]) {
        replicas.set(
          identity,
          startOperatorReplica(identity, [
            "--source",
            "kube",
            "--kubeconfig",
            kube.kubeconfigPath,
            "--nats-url",
            nats.url,
            "--lease-namespace",
            "default",
            "--lease-duration",
            String(LEASE_SECONDS),
          ], log),
        );
      }
      const holder = async () =>
        (await client.get<Lease>(LeaseType, "fleet-operator", "default"))?.spec.holderIdentity;
      const leader = await waitFor("a leader", async () => {
        const h = await holder();
        return h === "op-a" || h === "op-b" ? h : undefined;
      }, 60_000);

      const store = new KubeDeploymentStore(client, log);
      const desired = await new Kvm(nc).open(Buckets.desiredState);
      await store.apply(webDeployment({ name: "web", selector: { matchLabels: { site: "lab" } } }));
      await store.apply(webDeployment({ name: "api", selector: { matchLabels: { site: "lab" } } }));
      const apiKey = keys.desiredState("dev-1", { namespace: "default", name: "api" });
      const webKey = keys.desiredState("dev-1", { namespace: "default", name: "web" });
      const apiRevision = await waitFor(
        "api's key",
        async () => (await desired.get(apiKey))?.revision,
      );
      await waitFor("web's key", async () => (await desired.get(webKey))?.revision);

      // The leader dies without a word: no lease release, the standby must wait it out.
      const killedAt = performance.now();
      replicas.get(leader)!.child.kill("SIGKILL");
      await replicas.get(leader)!.child.status;
      const standby = leader === "op-a" ? "op-b" : "op-a";
      await waitFor(
        "the standby to take the lease",
        async () => (await holder()) === standby || undefined,
        60_000,
        100,
      );
      log.info(
        `leader failover: ${((performance.now() - killedAt) / 1000).toFixed(2)} s after the ` +
          `kill (lease duration ${LEASE_SECONDS} s)`,
      );

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
        const d = await client.get<{ status?: { observedGeneration?: number } }>(
          DeploymentType,
          "web",
          "default",
        );
        return d?.status?.observedGeneration === 2 || undefined;
      }, 30_000);
    } finally {
      for (const replica of replicas.values()) await replica[Symbol.asyncDispose]();
      await nc.close();
    }
  },
);
