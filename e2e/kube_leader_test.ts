/**
 * High availability with real processes: two `fleet operator run --source kube
 * --leader-elect` replicas; the leader is killed, the standby takes over within the lease
 * duration, and the hand-over loses and duplicates nothing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { Buckets, type DeviceInfo, type Heartbeat, keys } from "../core/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, ensureBucket, noCredentials } from "../adapters/nats/mod.ts";
import { KubeDeploymentStore } from "../cli/kube_store.ts";
import { DeploymentType, installCrds, LeaseType } from "../operator/mod.ts";
import { waitFor } from "../sandbox/local_fleet.ts";
import { webDeployment } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
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
    const replicas = new Map<string, Deno.ChildProcess>();
    try {
      // A device registers the way an agent does: its info and a heartbeat.
      const info: DeviceInfo = {
        deviceId: "dev-1",
        labels: { site: "lab", "fleet.nationtech.io/device-id": "dev-1" },
        inventory: {
          hostname: "dev-1",
          arch: "x86_64",
          os: "test",
          kernel: "6",
          cpuCores: 1,
          memoryMb: 512,
          agentVersion: "test",
        },
        updatedAt: new Date().toISOString(),
      };
      await (await ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }))
        .put(keys.deviceInfo("dev-1"), JSON.stringify(info));
      const beats = await ensureBucket(nc, Buckets.deviceHeartbeat, { replicas: 1, history: 1 });
      const beat = () =>
        beats.put(
          keys.heartbeat("dev-1"),
          JSON.stringify({ deviceId: "dev-1", at: Date.now() } satisfies Heartbeat),
        );
      await beat();
      const beating = setInterval(() => void beat(), 1000);

      for (const identity of ["op-a", "op-b"]) {
        replicas.set(
          identity,
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-A",
              MAIN,
              "operator",
              "run",
              "--source",
              "kube",
              "--leader-elect",
              "--kubeconfig",
              kube.kubeconfigPath,
              "--nats-url",
              nats.url,
              "--identity",
              identity,
              "--lease-namespace",
              "default",
              "--lease-duration",
              String(LEASE_SECONDS),
              "--log-level",
              "warn",
            ],
            stdout: "null",
            stderr: "null",
          }).spawn(),
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
      replicas.get(leader)!.kill("SIGKILL");
      await replicas.get(leader)!.status;
      replicas.delete(leader);
      const standby = leader === "op-a" ? "op-b" : "op-a";
      await waitFor(
        "the standby to take the lease",
        async () => (await holder()) === standby || undefined,
        60_000,
        100,
      );
      const failoverMs = performance.now() - killedAt;
      console.log(
        `leader failover: ${(failoverMs / 1000).toFixed(2)} s (lease duration ${LEASE_SECONDS} s)`,
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
      clearInterval(beating);
    } finally {
      for (const child of replicas.values()) {
        child.kill("SIGTERM");
        await child.status;
      }
      await nc.close();
    }
  },
);
