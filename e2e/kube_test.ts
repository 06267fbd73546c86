/**
 * The kube source on real parts: kube-apiserver and etcd (built from the Go module proxy),
 * nats-server, podman, the operator and agents.
 */
import assert from "node:assert/strict";
import { REACHABLE } from "../crd/device_resource.ts";
import { Buckets, ContainerLabels, DEVICE_ID_LABEL } from "../core/mod.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { KubeApiError, KubeClient } from "../adapters/kube/mod.ts";
import { readBucket } from "../adapters/nats/mod.ts";
import { Kvm } from "@nats-io/kv";
import { DeploymentRefusedError, KubeDeploymentStore } from "../cli/kube_store.ts";
import { DeploymentType, DeviceType, FINALIZER, installCrds } from "../operator/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import { containerIds, startFleet, webDeployment } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };

interface DeploymentCr {
  metadata: { generation?: number; finalizers?: string[]; resourceVersion?: string };
  status?: {
    observedGeneration?: number;
    aggregate?: { matchedDeviceCount: number; succeeded: number };
  };
}
interface DeviceCr {
  metadata: {
    labels?: Record<string, string>;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  spec: {
    inventory: { arch: string; agentVersion: string };
    unselectableLabels?: Record<string, string>;
  };
  status?: { conditions?: { type: string; status: string; reason: string }[] };
}

async function desiredKeys(
  fleet: Awaited<ReturnType<typeof startFleet>>,
): Promise<Map<string, Uint8Array>> {
  return await readBucket(await fleet.connection(), Buckets.desiredState, fleet.log);
}

story(
  "kube source: CRDs are Established and CEL rules reject bad objects with their messages",
  async () => {
    await using kube = stopOnDeadline(await startKubeApiServer());
    using client = new KubeClient(kube.adminConfig);
    assert.deepEqual(await installCrds(client, testLogger()), [
      "deployments.fleet.nationtech.io",
      "devices.fleet.nationtech.io",
    ]);
    const store = new KubeDeploymentStore(client, testLogger());
    const rejects = async (mutate: (d: Record<string, unknown>) => void, message: RegExp) => {
      const d = structuredClone(webDeployment({ name: "web", selector: LAB })) as unknown as Record<
        string,
        unknown
      >;
      mutate(d);
      await assert.rejects(() => store.apply(d as never), (e: unknown) => {
        // The API server's refusal, passed on as the user's error (exit code 2).
        assert.ok(e instanceof DeploymentRefusedError, String(e));
        assert.ok(e.cause instanceof KubeApiError, String(e.cause));
        assert.match(e.message, message);
        return true;
      });
    };
    const spec = (d: Record<string, unknown>) => d.spec as Record<string, Record<string, unknown>>;
    await rejects((d) => spec(d).score!.type = "HelmV1", /supported values: "PodmanV0"/);
    await rejects(
      (d) => (d.metadata as Record<string, string>).name = "Web_1",
      /invalid deployment name 'Web_1'/,
    );
    await rejects(
      (d) => spec(d).targetSelector!.matchExpressions = [{ key: "site", operator: "DoesNotExist" }],
      /matches no device/,
    );
    await rejects(
      (d) =>
        spec(d).targetSelector!.matchExpressions = [
          { key: "tier", operator: "Exists" },
          { key: "tier", operator: "DoesNotExist" },
        ],
      /matches no device/,
    );
    await rejects(
      (d) =>
        spec(d).targetSelector!.matchExpressions = [{
          key: "site",
          operator: "In",
          values: ["shop"],
        }],
      /matches no device/,
    );
    assert.deepEqual(await store.apply(webDeployment({ name: "web", selector: LAB })), {
      outcome: "created",
      generation: 1,
    });
  },
);

story(
  "kube source: apply → keys → containers → status.aggregate; update; delete releases the finalizer; Device objects and Reachable",
  async () => {
    await using kube = stopOnDeadline(await startKubeApiServer());
    using client = new KubeClient(kube.adminConfig);
    await installCrds(client, testLogger());
    await using fleet = await startFleet();
    await fleet.startOperator({ kube: client });
    await fleet.startAgent({
      deviceId: "lab-1",
      labels: { site: "lab", room: "Lab A / 2nd floor" },
    });
    await fleet.startAgent({ deviceId: "lab-2", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "shop-1", labels: { site: "shop" } });
    const store = new KubeDeploymentStore(client, testLogger());

    // Devices are listed like Nodes, with the labels a selector can match.
    const devices = await waitFor("three Device objects, reachable", async () => {
      const { items } = await client.list<DeviceCr>(DeviceType);
      const reachable = items.filter((d) =>
        d.status?.conditions?.some((c) => c.type === REACHABLE && c.status === "True")
      );
      return reachable.length === 3 ? items : undefined;
    });
    const lab1 = devices.find((d) => d.metadata.labels?.[DEVICE_ID_LABEL] === "lab-1")!;
    assert.equal(lab1.spec.inventory.agentVersion, "0.0.0-test");
    // "Lab A / 2nd floor" (an earlier version's config) is no Kubernetes label value: the
    // agent runs, and the Device shows the label as not selectable, apart from its labels.
    assert.equal(lab1.metadata.labels?.room, undefined);
    assert.deepEqual(lab1.spec.unselectableLabels, { room: "Lab A / 2nd floor" });
    const listed = await store.devices();
    assert.deepEqual(listed.find((d) => d.info.deviceId === "lab-1")?.info.unselectableLabels, {
      room: "Lab A / 2nd floor",
    });

    const applyAt = performance.now();
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await waitFor(
      "desired-state keys",
      async () => (await desiredKeys(fleet)).size === 2 || undefined,
      30_000,
      20,
    );
    const keysMs = performance.now() - applyAt;
    const cr = await waitFor(
      "status.aggregate with 2 succeeded",
      async () => {
        const d = await client.get<DeploymentCr>(DeploymentType, "web", "default");
        return d?.status?.aggregate?.succeeded === 2 && d.status.observedGeneration === 1
          ? d
          : undefined;
      },
      30_000,
      50,
    );
    const statusMs = performance.now() - applyAt;
    console.log(
      `kube apply → desired keys ${keysMs.toFixed(0)} ms, → status.aggregate 2/2 ${
        statusMs.toFixed(0)
      } ms`,
    );
    assert.deepEqual(cr.metadata.finalizers, [FINALIZER]);
    assert.equal(cr.status?.aggregate?.matchedDeviceCount, 2);

    const before = await containerIds(fleet);
    assert.equal(
      (await store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" }))).generation,
      2,
    );
    await waitFor("generation 2 running on both", async () => {
      const d = await client.get<DeploymentCr>(DeploymentType, "web", "default");
      return d?.status?.observedGeneration === 2 && d.status.aggregate?.succeeded === 2 ||
        undefined;
    });
    const after = await containerIds(fleet);
    assert.equal(after.size, 2);
    for (const [name, id] of after) assert.notEqual(before.get(name), id, `${name} was recreated`);

    // Reachable flips when heartbeats stop, and back when they return.
    await fleet.stopAgent("shop-1");
    await waitFor("shop-1 unreachable", async () => {
      const d = await client.get<DeviceCr>(DeviceType, "shop-1");
      return d?.status?.conditions?.some((c) => c.type === REACHABLE && c.status === "False") ||
        undefined;
    }, 30_000);
    await fleet.startAgent({ deviceId: "shop-1", labels: { site: "shop" } });
    await waitFor("shop-1 reachable again", async () => {
      const d = await client.get<DeviceCr>(DeviceType, "shop-1");
      return d?.status?.conditions?.some((c) => c.type === REACHABLE && c.status === "True") ||
        undefined;
    }, 30_000);

    // A Device object deleted by hand comes back while its device reports.
    assert.equal(await client.delete(DeviceType, "lab-2"), true);
    const back = await waitFor("lab-2's Device object to come back", async () => {
      const d = await client.get<DeviceCr>(DeviceType, "lab-2");
      return d?.status?.conditions?.some((c) => c.type === REACHABLE && c.status === "True")
        ? d
        : undefined;
    }, 30_000);
    assert.equal(back.metadata.labels?.site, "lab");

    assert.equal(await store.delete({ namespace: "default", name: "web" }), true);
    await waitFor(
      "the CR to go once its keys are gone",
      async () => (await client.get(DeploymentType, "web", "default")) === undefined || undefined,
    );
    assert.equal((await desiredKeys(fleet)).size, 0);
    await waitFor(
      "containers removed",
      async () => (await fleet.containers()).length === 0 || undefined,
    );
    assert.ok(
      (await fleet.containers()).every((c) => c.labels[ContainerLabels.deployment] !== "web"),
    );
  },
);

/** Revision of every desired-state key, to prove nothing was rewritten. */
async function desiredRevisions(
  fleet: Awaited<ReturnType<typeof startFleet>>,
): Promise<Map<string, number>> {
  const kv = await new Kvm(await fleet.connection()).open(Buckets.desiredState);
  const revisions = new Map<string, number>();
  for (const key of (await desiredKeys(fleet)).keys()) {
    revisions.set(key, (await kv.get(key))!.revision);
  }
  return revisions;
}

async function resourceVersions(client: KubeClient): Promise<Map<string, string>> {
  const versions = new Map<string, string>();
  for (const type of [DeploymentType, DeviceType]) {
    const { items } = await client.list<{ metadata: { name: string; resourceVersion?: string } }>(
      type,
    );
    for (const item of items) {
      versions.set(`${type.kind}/${item.metadata.name}`, item.metadata.resourceVersion ?? "");
    }
  }
  return versions;
}

story(
  "kube source: operator restart and API server restart converge without duplicate writes",
  async () => {
    await using kube = stopOnDeadline(await startKubeApiServer());
    using client = new KubeClient(kube.adminConfig);
    await installCrds(client, testLogger());
    await using fleet = await startFleet();
    await fleet.startOperator({ kube: client });
    await fleet.startAgent({ deviceId: "lab-1", labels: { site: "lab" } });
    await fleet.startAgent({ deviceId: "lab-2", labels: { site: "lab", note: "has spaces" } });
    const store = new KubeDeploymentStore(client, testLogger());
    await store.apply(webDeployment({ name: "web", selector: LAB }));
    await store.apply(webDeployment({ name: "api", selector: LAB }));
    for (const name of ["web", "api"]) {
      await waitFor(`${name} 2/2`, async () => {
        const d = await client.get<DeploymentCr>(DeploymentType, name, "default");
        return d?.status?.aggregate?.succeeded === 2 || undefined;
      });
    }
    await waitFor("both devices reachable", async () => {
      const { items } = await client.list<DeviceCr>(DeviceType);
      return items.filter((d) => d.status?.conditions?.some((c) => c.status === "True")).length ===
          2 ||
        undefined;
    });
    const revisions = await desiredRevisions(fleet);
    const versions = await resourceVersions(client);
    const containers = await containerIds(fleet);

    await fleet.stopOperator();
    const restarted = await fleet.startOperator({ kube: client });
    await new Promise((r) => setTimeout(r, 3000)); // several flush intervals and heartbeats
    assert.deepEqual(restarted.stats, {
      desiredPuts: 0,
      desiredDeletes: 0,
      statusWrites: 0,
      writeErrors: 0,
      bucketsRecreated: 0,
    });
    assert.equal(fleet.deviceSink?.writes, 0, "no Device object rewritten");
    assert.deepEqual(await desiredRevisions(fleet), revisions);
    assert.deepEqual(await resourceVersions(client), versions);

    // Another writer (a GitOps tool, say) owns an annotation; status writes must not touch it.
    await client.apply(DeploymentType, {
      apiVersion: "fleet.nationtech.io/v1alpha1",
      kind: "Deployment",
      metadata: {
        name: "web",
        namespace: "default",
        annotations: { "gitops.example/sync-wave": "2" },
      },
    }, { fieldManager: "gitops-tool" });

    await kube.restart();
    await waitFor("the API server to answer", () => client.list(DeploymentType), 30_000);
    await store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" }));
    await waitFor("web generation 2 on both devices", async () => {
      const d = await client.get<DeploymentCr>(DeploymentType, "web", "default");
      return d?.status?.observedGeneration === 2 && d.status.aggregate?.succeeded === 2 ||
        undefined;
    }, 60_000);
    assert.equal(restarted.stats.desiredPuts, 2, "exactly web's two keys were rewritten");
    const web = await client.get<{ metadata: { annotations?: Record<string, string> } }>(
      DeploymentType,
      "web",
      "default",
    );
    assert.equal(
      web?.metadata.annotations?.["gitops.example/sync-wave"],
      "2",
      "other writers' fields kept",
    );
    assert.equal(restarted.stats.desiredDeletes, 0);
    const after = await desiredRevisions(fleet);
    for (const key of ["lab-1.default.api", "lab-2.default.api"]) {
      assert.equal(after.get(key), revisions.get(key), `${key} untouched`);
    }
    const now = await containerIds(fleet);
    for (const [name, id] of containers) {
      if (name.includes("_api_")) assert.equal(now.get(name), id, `${name} not recreated`);
    }
  },
);
