/**
 * The production path on a real single-node cluster (issue 13, item 6): `helm install` of the
 * chart with the images loaded into the node's containerd and the Secrets an OKD user creates
 * (testing/cluster_control_plane.ts), HAProxy terminating TLS in front of the NATS Service as the
 * OpenShift router does, and a device agent on the host that connects over wss:// with its
 * OIDC identity. A Deployment applied with server-side apply runs on the device; `helm upgrade`
 * to a new image tag loses no write made while the pods roll; the leader operator pod killed,
 * the other takes over; `helm uninstall` keeps the CRDs and the Deployments.
 */
import assert from "node:assert/strict";
import { ContainerLabels, DEVICE_SELECTOR_ANNOTATION, MANAGED_BY } from "../core/mod.ts";
import { NamespaceType } from "../adapters/kube/types.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { CrdType, DeploymentType, DeviceType } from "../operator/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import {
  CONTROL_PLANE_NAMESPACE,
  CONTROL_PLANE_PODS,
  startClusterControlPlane,
} from "../testing/cluster_control_plane.ts";
import { PodType } from "../testing/kube_node.ts";
import { writeAgentConfig } from "../testing/edge_nats.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { eventually } from "../testing/eventually.ts";
import type { KubeObject } from "../adapters/kube/types.ts";
import { fleet, FleetProcess } from "./_helpers.ts";
import { stopOnDeadline, story } from "./_story.ts";

/** Each step waits this long at most: pods start slowly on 2 busy cores. */
const STEP_MS = 240_000;
/** The namespace of the edge team's Deployments, bound to the devices labelled site=edge. */
const EDGE = "edge";

interface DeploymentCr extends KubeObject {
  status?: {
    observedGeneration?: number;
    aggregate?: { matchedDeviceCount?: number; succeeded?: number };
  };
}

story(
  "cluster install: helm install on a real node, a device over wss:// through the route, apply, upgrade, failover, uninstall",
  { deadlineMs: 25 * 60_000 },
  async () => {
    await using dir = await tempDir("fleet-cluster-");
    await using podmanService = stopOnDeadline(await startPodmanService());
    using podman = new PodmanClient({ socketPath: podmanService.socketPath });
    await ensureTestImage(podman, "v1");
    await ensureTestImage(podman, "v2");

    // 1. helm install: every pod Ready (inside), under the restricted Pod Security Standard.
    await using plane = stopOnDeadline(await startClusterControlPlane(dir.path, podman));
    const { client, idp, route, kubeconfig } = plane;

    // 2. A device on the host connects through the route stand-in with its OIDC identity.
    const device = await idp.addMachineUser({ id: "pi-1", roles: ["device"], deviceId: "pi-1" });
    const managed = () =>
      podman.listContainers({
        [ContainerLabels.managedBy]: MANAGED_BY,
        [ContainerLabels.deviceId]: "pi-1",
      });
    const agentConfig = await writeAgentConfig(dir.path, {
      deviceId: "pi-1",
      urls: [route.url],
      caFile: plane.routeCaFile,
      idp,
      user: device,
      podmanSocket: podmanService.socketPath,
    });
    try {
      const agentStart = performance.now();
      // The device trusts the identity provider's company CA (DENO_CERT here; the system
      // store for a packaged agent).
      await using agent = new FleetProcess("agent", ["agent", "run", "--config", agentConfig], {
        DENO_CERT: plane.idpCaFile,
      });
      const connected = new RegExp(`Connected to NATS at 127\\.0\\.0\\.1:${route.port}`);
      await eventually(
        "the agent to connect through the route",
        () => agent.matching(connected).length === 1,
        STEP_MS,
      );
      const connectMs = Math.round(performance.now() - agentStart);

      // 3. An admin labels the device (deployments select by the control plane's labels, not
      // by what a device reports) and binds the namespace edge to it; a Deployment applied
      // with server-side apply runs on it and shows in status.aggregate.
      await eventually("pi-1's Device object", () => client.get(DeviceType, "pi-1"), STEP_MS);
      const labelled = await fleet([
        ...["device", "label", "pi-1", "site=edge", "--target", "kube", ...kubeconfig],
      ]);
      assert.equal(labelled.code, 0, labelled.stderr);
      await client.create(NamespaceType, {
        metadata: { name: EDGE, annotations: { [DEVICE_SELECTOR_ANNOTATION]: "site=edge" } },
      });
      const apply = async (name: string, image: string) => {
        const r = await fleet([
          ...["apply", "deployment", "--name", name, "-n", EDGE, "--selector", "site=edge"],
          ...["--image", image, "--target", "kube", ...kubeconfig],
        ]);
        assert.equal(r.code, 0, r.stderr);
      };
      const runsOnDevice = (name: string, image: string, generation: number) =>
        eventually(`${name} ${image} (generation ${generation}) to run on pi-1`, async () => {
          const cr = await client.get<DeploymentCr>(DeploymentType, name, EDGE);
          const containers = (await managed()).filter((c) =>
            c.labels[ContainerLabels.deployment] === name
          );
          return cr?.status?.observedGeneration === generation &&
            cr.status.aggregate?.matchedDeviceCount === 1 &&
            cr.status.aggregate.succeeded === 1 &&
            containers.length === 1 && containers[0]?.state === "running" &&
            containers[0].image === image;
        }, STEP_MS);
      await apply("web", "localhost/fleet-test:v1");
      await runsOnDevice("web", "localhost/fleet-test:v1", 1);

      // 4. helm upgrade to a new tag rolls the control plane; changes made meanwhile land.
      await plane.upgrade("1.0.1-test");
      await apply("web", "localhost/fleet-test:v2");
      await apply("api", "localhost/fleet-test:v1");
      await plane.waitForPods();
      await runsOnDevice("web", "localhost/fleet-test:v2", 2);
      await runsOnDevice("api", "localhost/fleet-test:v1", 1);

      // 5. The leader's pod killed: the standby takes the Lease, and a change still lands.
      const leader = await eventually("a running operator pod to hold the Lease", async () => {
        const name = await plane.leader();
        return name && await client.get(PodType, name, CONTROL_PLANE_NAMESPACE) ? name : undefined;
      }, STEP_MS);
      assert.equal(
        await client.delete(PodType, leader, {
          namespace: CONTROL_PLANE_NAMESPACE,
          gracePeriodSeconds: 0,
        }),
        true,
      );
      const failoverStart = performance.now();
      const successor = await eventually("another operator pod to hold the Lease", async () => {
        const now = await plane.leader();
        return now !== undefined && now !== leader ? now : undefined;
      }, STEP_MS);
      const failoverMs = Math.round(performance.now() - failoverStart);
      assert.match(successor, /^fleet-operator-/);
      await apply("web", "localhost/fleet-test:v1");
      await runsOnDevice("web", "localhost/fleet-test:v1", 3);
      await plane.waitForPods();

      // 6. helm uninstall keeps the CRDs and the Deployments.
      await plane.uninstall();
      for (const crd of ["deployments.fleet.nationtech.io", "devices.fleet.nationtech.io"]) {
        assert.ok(await client.get(CrdType, crd), `${crd} kept`);
      }
      for (const name of ["web", "api"]) {
        assert.ok(await client.get(DeploymentType, name, EDGE), `${EDGE}/${name} kept`);
      }
      console.log(
        `helm install → ${CONTROL_PLANE_PODS} pods Ready ${plane.installMs} ms; agent start → ` +
          `connected over wss:// through the route ${connectMs} ms; leader ${leader} → ` +
          `${successor} in ${failoverMs} ms`,
      );
    } finally {
      for (const c of await managed()) await podman.removeContainer(c.id);
    }
  },
);
