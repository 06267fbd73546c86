import assert from "node:assert/strict";
import { KubeClient } from "../adapters/kube/client.ts";
import type { KubeObject, ResourceType } from "../adapters/kube/types.ts";
import { PodmanClient } from "../adapters/podman/client.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { waitFor } from "../adapters/timers.ts";
import { NODE_NAME, PodType, ServiceType, startKubeNode } from "./kube_node.ts";

const PersistentVolumeClaimType: ResourceType = {
  group: "",
  version: "v1",
  plural: "persistentvolumeclaims",
  kind: "PersistentVolumeClaim",
  namespaced: true,
};

interface Pod extends KubeObject {
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}
interface Service extends KubeObject {
  spec?: {
    type?: string;
    selector?: Record<string, string>;
    clusterIP?: string;
    ports?: { port: number; targetPort?: number; nodePort?: number }[];
  };
}

const POD_TIMEOUT_MS = 120_000;
const TAG = "kube-node";

Deno.test("single-node cluster: pods reach Services by IP and name, the API, a volume", async () => {
  await using podmanService = await startPodmanService();
  using podman = new PodmanClient({ socketPath: podmanService.socketPath });
  const image = await ensureTestImage(podman, TAG);

  await using node = await startKubeNode();
  const loadStart = performance.now();
  await node.loadImage(image);
  // Pods find an image under another name too, as the chart's under its multi-arch index's.
  const webImage = "localhost/fleet-web:1";
  await node.loadImage(image, webImage);
  const loadMs = Math.round(performance.now() - loadStart);
  using client = new KubeClient(node.api.adminConfig);

  const podStart = performance.now();
  await client.create(PodType, {
    metadata: { name: "web", namespace: "default", labels: { app: "web" } },
    spec: {
      containers: [{
        name: "web",
        image: webImage,
        imagePullPolicy: "Never",
        ports: [{ containerPort: 80 }],
        readinessProbe: { httpGet: { path: "/", port: 80 }, periodSeconds: 1 },
      }],
    },
  });
  const web = await waitFor(
    "pod web to be Ready",
    async () => {
      const pod = await client.get<Pod>(PodType, "web", "default");
      const ready = pod?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
      return ready ? pod : undefined;
    },
    POD_TIMEOUT_MS,
    250,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; kubelet:\n${await node.logTail("kubelet")}`);
  });
  const podReadyMs = Math.round(performance.now() - podStart);
  assert.equal((web as { spec?: { nodeName?: string } }).spec?.nodeName, NODE_NAME);

  const service = await client.create<Service>(ServiceType, {
    metadata: { name: "fleet-web", namespace: "default" },
    spec: {
      type: "NodePort",
      selector: { app: "web" },
      ports: [{ port: 8080, targetPort: 80 }],
    },
  });
  const clusterIp = service.spec?.clusterIP;
  const nodePort = service.spec?.ports?.[0]?.nodePort;
  assert.ok(clusterIp && nodePort, JSON.stringify(service.spec));
  const page = `fleet-test ${TAG}\n`;
  // kube-proxy programs the Service's rules a moment after the EndpointSlice appears. Until
  // then the address is routed off the host (here to an intercepting proxy that answers 404),
  // so each try takes a new connection rather than reusing one that went astray.
  using http = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  for (const url of [`http://${clusterIp}:8080/`, `http://${node.nodeAddress}:${nodePort}/`]) {
    const body = await waitFor(
      `${url} to answer`,
      async (signal) => {
        const timeout = AbortSignal.any([signal, AbortSignal.timeout(2000)]);
        const response = await fetch(url, { client: http, signal: timeout });
        const text = await response.text();
        return response.ok ? text : undefined;
      },
      30_000,
      250,
    );
    assert.equal(body, page, url);
  }

  // A headless Service's name resolves to its pods' addresses, as the chart's NATS routes need.
  await client.create<Service>(ServiceType, {
    metadata: { name: "fleet-web-headless", namespace: "default" },
    spec: { clusterIP: "None", selector: { app: "web" }, ports: [{ port: 80 }] },
  });
  const podIp = (web as { status?: { podIP?: string } }).status?.podIP;
  const nameServer = { ipAddr: node.nodeAddress, port: 53 };
  const headless = await waitFor(
    "the headless Service's DNS name",
    async () => {
      const name = "fleet-web-headless.default.svc.cluster.local";
      const addresses = await Deno.resolveDns(name, "A", { nameServer });
      return addresses.length > 0 ? addresses : undefined;
    },
    30_000,
    250,
  );
  assert.deepEqual(headless, [podIp]);

  // From a pod: the Service by its short name (cluster DNS and the pod's search domains), and
  // the API server through the `kubernetes` Service with the pod's own service account token;
  // under OpenShift's restricted-v2 settings (a UID from a namespace range, no capabilities,
  // the runtime's seccomp profile, a read-only root), it writes to a claimed volume.
  const [volume] = await node.addVolumes(1);
  await client.create(PersistentVolumeClaimType, {
    metadata: { name: "data", namespace: "default" },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
  });
  await client.create(PodType, {
    metadata: { name: "client", namespace: "default" },
    spec: {
      restartPolicy: "Never",
      securityContext: {
        runAsUser: 1000680000,
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      },
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }],
      containers: [{
        name: "client",
        image,
        imagePullPolicy: "Never",
        command: [
          "/bin/sh",
          "-c",
          "set -e; wget -qO- http://fleet-web:8080/; " +
          "token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); " +
          'wget -qO- --header "Authorization: Bearer $token" ' +
          "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version; " +
          "echo written > /data/by-pod",
        ],
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        },
        volumeMounts: [{ name: "data", mountPath: "/data" }],
      }],
    },
  });
  const phase = await waitFor(
    "pod client to finish",
    async () => {
      const pod = await client.get<Pod>(PodType, "client", "default");
      const phase = pod?.status?.phase;
      return phase === "Succeeded" || phase === "Failed" ? phase : undefined;
    },
    POD_TIMEOUT_MS,
    250,
  );
  const log = await node.podLog("default", "client");
  assert.equal(phase, "Succeeded", log);
  assert.match(log, /fleet-test kube-node/);
  assert.match(log, /"gitVersion": "v1\.34\.4"/);
  assert.equal(await Deno.readTextFile(`${node.dir}/volumes/${volume}/by-pod`), "written\n");

  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const memory = Object.entries(await node.memory()).map(([name, bytes]) =>
    `${name} ${mib(bytes)}`
  );
  console.log(
    `node Ready in ${node.startupMs} ms (API server included), image loaded in ${loadMs} ms, ` +
      `pod Ready in ${podReadyMs} ms; RSS: ${memory.join(", ")}`,
  );

  // Stopping it leaves none of its processes behind (a CoreDNS left running kept a benchmark
  // that used the node from exiting).
  await node[Symbol.asyncDispose]();
  const left: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (cmdline.includes(node.dir)) left.push(cmdline.replaceAll("\0", " "));
  }
  assert.deepEqual(left, []);
});
