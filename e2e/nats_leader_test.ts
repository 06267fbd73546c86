/**
 * High availability without Kubernetes: two `fleet operator run --source nats --leader-elect`
 * replicas share one nats-server and compete for the lease in the `fleet-leases` bucket. Only
 * the holder writes desired state; the leader is killed, the standby takes over once the lease
 * has gone unrenewed for its whole duration, and the hand-over loses and duplicates nothing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Buckets, type DeviceInfo, type Heartbeat, keys } from "../core/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { connectNats, ensureBucket, noCredentials } from "../adapters/nats/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { NatsDeploymentStore } from "../cli/nats_store.ts";
import { electionTimings, NatsLeaseStore } from "../operator/mod.ts";
import { waitFor } from "../sandbox/local_fleet.ts";
import { webDeployment } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const LEASE_SECONDS = 3;

/** A replica's process, its log lines forwarded to the story's log. */
interface Replica {
  child: Deno.ChildProcess;
  /** Set once the process has exited. */
  exited: Deno.CommandStatus | undefined;
  /** Resolves once its stderr is drained. */
  logged: Promise<void>;
}

function startReplica(identity: string, natsUrl: string, log: Logger): Replica {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "operator",
      "run",
      "--source",
      "nats",
      "--leader-elect",
      "--nats-url",
      natsUrl,
      "--identity",
      identity,
      "--lease-duration",
      String(LEASE_SECONDS),
      "--log-level",
      "info",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const replica: Replica = { child, exited: undefined, logged: Promise.resolve() };
  void child.status.then((status) => replica.exited = status);
  replica.logged = (async () => {
    const lines = child.stderr.pipeThrough(new TextDecoderStream());
    let rest = "";
    for await (const chunk of lines) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) log.info(`[${identity}] ${line}`);
    }
    if (rest !== "") log.info(`[${identity}] ${rest}`);
  })();
  return replica;
}

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
    const replicas = new Map<string, Replica>();
    let beating: ReturnType<typeof setInterval> | undefined;
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
      beating = setInterval(() => void beat(), 1000);

      for (const identity of ["op-a", "op-b"]) {
        replicas.set(identity, startReplica(identity, nats.url, log));
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

      // Until the kill, note when the lease was last renewed as the test saw it: the standby
      // may take over only a whole lease duration after it saw that renewal itself.
      let revision = (await lease.get())?.revision;
      let renewedAt = performance.now();
      const watchUntil = performance.now() + 1500;
      while (performance.now() < watchUntil) {
        const seen = (await lease.get())?.revision;
        if (seen !== revision) [revision, renewedAt] = [seen, performance.now()];
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.ok(performance.now() - renewedAt < 1500, "the leader renews its lease");

      // The leader dies without a word: no release, the standby must wait the lease out.
      const killedAt = performance.now();
      replicas.get(leader)!.child.kill("SIGKILL");
      await replicas.get(leader)!.child.status;
      await waitFor(
        "the standby to take the lease",
        async () => (await holder()) === standby || undefined,
        60_000,
        50,
      );
      const tookOverAt = performance.now();
      log.info(
        `leader failover: ${((tookOverAt - killedAt) / 1000).toFixed(2)} s after the kill, ` +
          `${((tookOverAt - renewedAt) / 1000).toFixed(2)} s after the last renewal ` +
          `(lease duration ${LEASE_SECONDS} s)`,
      );
      // Slack for the test's own polling: it saw the renewal at most ~a poll after it happened.
      const { retryIntervalMs } = electionTimings(LEASE_SECONDS);
      assert.ok(
        tookOverAt - renewedAt >= LEASE_SECONDS * 1000 - 250,
        `the standby took over ${Math.round(tookOverAt - renewedAt)} ms after the last renewal, ` +
          `before the lease duration (${LEASE_SECONDS} s) was over`,
      );
      assert.ok(
        tookOverAt - renewedAt < LEASE_SECONDS * 1000 + 2 * retryIntervalMs + 5000,
        "the standby took over soon after the lease expired",
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
      clearInterval(beating);
      for (const replica of replicas.values()) {
        if (replica.exited === undefined) {
          replica.child.kill("SIGTERM");
          await replica.child.status;
        }
        await replica.logged;
      }
      await nc.close();
    }
  },
);
