/**
 * A single-node Kubernetes cluster for tests: the API server of testing/kube_apiserver.ts,
 * and on this host containerd (Debian's), the CNI plugins (Debian's: bridge, host-local,
 * portmap, loopback), a kubelet, kube-controller-manager, kube-scheduler, kube-proxy
 * (iptables mode) and CoreDNS for `cluster.local`, all built by
 * `scripts/build-kube-test-bins.sh`. Pods run for real, get IPs on a bridge, and Services
 * work from the host and from pods, by IP and by name.
 *
 * It changes the host the way a node does, so it needs root and runs one at a time: the
 * bridge `fleetkube0` with pods on 10.244.0.0/24, kube-proxy's and the CNI plugins'
 * iptables rules (removed again on dispose), cgroups under `kubepods`. No registry is
 * reachable here: images come from podman's storage ({@linkcode KubeNode.loadImage}),
 * and pods must use `imagePullPolicy: Never` or `IfNotPresent`. The cluster's DNS server
 * runs on the host, at the node's address (port 53), not behind a Service.
 */

import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { KubeClient } from "../adapters/kube/client.ts";
import { KubeError } from "../adapters/kube/errors.ts";
import type { KubeObject, ResourceType } from "../adapters/kube/types.ts";
import { findExecutable, freePort } from "../adapters/process.ts";
import { waitFor } from "../adapters/timers.ts";
import {
  type KubeApiServer,
  kubeBinDir,
  LoggedProcess,
  startKubeApiServer,
} from "./kube_apiserver.ts";

/** The node's name in the cluster. */
export const NODE_NAME = "fleet-test-node";

/** Pods' addresses (the CNI bridge's host-local range). */
export const POD_CIDR = "10.244.0.0/24";

const BRIDGE = "fleetkube0";
const CNI_BIN_DIR = "/usr/lib/cni";
const CONTAINER_LOG_LINKS = "/var/log/containers";
/** containerd's namespace for the CRI (where the kubelet looks for images). */
const CRI_NAMESPACE = "k8s.io";
/** The pod sandbox image: busybox sleeping, built here (registry.k8s.io/pause is unreachable). */
const PAUSE_IMAGE = "localhost/fleet-pause:1";
const PAUSE_CONTAINERFILE = `FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "sleep", "2147483647"]
`;
const CLUSTER_DOMAIN = "cluster.local";
const NODE_READY_TIMEOUT_MS = 120_000;
const DNS_READY_TIMEOUT_MS = 30_000;
const CONTAINERD_READY_TIMEOUT_MS = 30_000;
const PODS_GONE_TIMEOUT_MS = 60_000;
const LOG_TAIL_LINES = 25;

/** The processes of the node, for logs and memory figures. */
export type NodeComponent =
  | "containerd"
  | "coredns"
  | "kubelet"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "kube-proxy";

/** A running single-node cluster; `await using` stops it and undoes its host changes. */
export interface KubeNode extends AsyncDisposable {
  /** The API server (and etcd) the node registered with. */
  readonly api: KubeApiServer;
  /** The host address pods and the API server reach the node at. */
  readonly nodeAddress: string;
  /** Temporary folder with configs, containerd's data and the logs; removed on dispose. */
  readonly dir: string;
  /** How long the start took, until the node was Ready and `default` had its ServiceAccount. */
  readonly startupMs: number;
  /**
   * Copies an image from podman's local storage into containerd, where pods find it
   * under `name`: the same reference by default, or e.g. a multi-arch index's name for
   * its amd64 image (`localhost/fleet:1.0.0-amd64` as `localhost/fleet:1.0.0`; podman
   * cannot save an index).
   */
  loadImage(ref: string, name?: string): Promise<void>;
  /**
   * Creates `count` PersistentVolumes without a storage class (what a claim binds to when
   * the cluster has no default class; there is no provisioner), each a folder under
   * {@linkcode KubeNode.dir} that any user may write, as pods under a random UID do.
   * @returns their names.
   */
  addVolumes(count: number, size?: string): Promise<string[]>;
  /** Resident memory (bytes) of each node process, containerd's shims not included. */
  memory(): Promise<Record<NodeComponent, number>>;
  /** The last lines of one component's log. */
  logTail(component: NodeComponent, lines?: number): Promise<string>;
  /**
   * What a pod's containers wrote (read from the kubelet's log files, so it works without
   * the API server), `""` for a pod that never started one.
   */
  podLog(namespace: string, name: string): Promise<string>;
}

/** Starting the test node failed; the message says why, with the end of the failing log. */
export class KubeNodeError extends KubeError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeNodeError";
  }
}

/**
 * Starts the API server, containerd and the node components, and waits until the node is
 * Ready and the `default` namespace has its ServiceAccount (pods can be created).
 *
 * @example
 * ```ts
 * await using node = await startKubeNode();
 * await node.loadImage("localhost/fleet-test:v1");
 * using client = new KubeClient(node.api.adminConfig);
 * ```
 * @throws {KubeNodeError} when not root, a program is missing (containerd and
 *   containernetworking-plugins come from `scripts/install.sh`, the kube binaries from
 *   `scripts/build-kube-test-bins.sh`), or a component exits or the node is not Ready in time.
 */
export async function startKubeNode(): Promise<KubeNode> {
  const started = performance.now();
  if (Deno.uid() !== 0) {
    throw new KubeNodeError(
      "Cannot start the test Kubernetes node: the kubelet and containerd need root " +
        `(this process runs as uid ${Deno.uid()})`,
    );
  }
  const binDir = kubeBinDir();
  const bins = {
    containerd: requireProgram("containerd", "apt-get install containerd"),
    ctr: requireProgram("ctr", "apt-get install containerd"),
    podman: requireProgram("podman", "apt-get install podman"),
    kubelet: requireFile(join(binDir, "kubelet")),
    controllerManager: requireFile(join(binDir, "kube-controller-manager")),
    scheduler: requireFile(join(binDir, "kube-scheduler")),
    proxy: requireFile(join(binDir, "kube-proxy")),
    coredns: requireFile(join(binDir, "coredns")),
  };
  requireFile(join(CNI_BIN_DIR, "bridge"), "apt-get install containernetworking-plugins");
  const nodeAddress = await hostAddress();
  const api = await startKubeApiServer({ nodeAddress });
  const dir = await Deno.makeTempDir({ prefix: "fleet-node-" });
  const node = new KubeNodeProcesses(api, dir, nodeAddress, bins);
  try {
    await node.start();
    node.startupMs = Math.round(performance.now() - started);
    return node;
  } catch (err) {
    await node[Symbol.asyncDispose]();
    throw err;
  }
}

function requireProgram(name: string, install: string): string {
  const path = findExecutable(name, ["/usr/sbin", "/sbin"]);
  if (path === undefined) {
    throw new KubeNodeError(
      `Cannot start the test Kubernetes node: "${name}" is not on PATH; install it (${install})`,
    );
  }
  return path;
}

function requireFile(
  path: string,
  install = "bash scripts/build-kube-test-bins.sh",
): string {
  try {
    Deno.statSync(path);
  } catch (err) {
    throw new KubeNodeError(
      `Cannot start the test Kubernetes node: ${path} does not exist; install it (${install})`,
      { cause: err },
    );
  }
  return path;
}

/** The address this host's default route leaves from: the node's InternalIP. */
async function hostAddress(): Promise<string> {
  const out = await run("ip", ["-j", "route", "get", "1.1.1.1"]);
  const routes = JSON.parse(out) as { prefsrc?: string }[];
  const address = routes[0]?.prefsrc;
  if (address === undefined) {
    throw new KubeNodeError(
      `Cannot start the test Kubernetes node: this host has no default route to take the ` +
        `node's address from (ip route get 1.1.1.1 said ${out.trim()})`,
    );
  }
  return address;
}

/** Runs a program to completion; its stdout, or a KubeNodeError with its stderr. */
async function run(program: string, args: string[], cwd?: string): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    stdin: "null",
    ...(cwd === undefined ? {} : { cwd }),
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (!output.success) {
    throw new KubeNodeError(
      `${program} ${args.slice(0, 3).join(" ")} failed (exit ${output.code}): ` +
        decode(output.stderr).trim(),
    );
  }
  return decode(output.stdout);
}

/**
 * Removes the iptables chains the kubelet made (kube-proxy --cleanup removes only its
 * own), so the host is as before; a later node makes them again.
 */
async function removeKubeletChains(): Promise<void> {
  for (const iptables of ["iptables", "ip6tables"]) {
    const ipt = (...args: string[]) => run(iptables, ["-w", ...args]).catch(() => "");
    await ipt("-D", "INPUT", "-j", "KUBE-FIREWALL");
    await ipt("-D", "OUTPUT", "-j", "KUBE-FIREWALL");
    await ipt("-F", "KUBE-FIREWALL");
    await ipt("-X", "KUBE-FIREWALL");
    for (const table of ["filter", "nat", "mangle"]) {
      await ipt("-t", table, "-X", "KUBE-KUBELET-CANARY");
    }
    await ipt("-t", "mangle", "-X", "KUBE-IPTABLES-HINT");
  }
}

/** Core `Pod`, for tests that run pods on the node. */
export const PodType: ResourceType = {
  group: "",
  version: "v1",
  plural: "pods",
  kind: "Pod",
  namespaced: true,
};
/** Core `Service`. */
export const ServiceType: ResourceType = {
  group: "",
  version: "v1",
  plural: "services",
  kind: "Service",
  namespaced: true,
};
const PersistentVolumeType: ResourceType = {
  group: "",
  version: "v1",
  plural: "persistentvolumes",
  kind: "PersistentVolume",
  namespaced: false,
};
const NodeType: ResourceType = {
  group: "",
  version: "v1",
  plural: "nodes",
  kind: "Node",
  namespaced: false,
};
const ServiceAccountType: ResourceType = {
  group: "",
  version: "v1",
  plural: "serviceaccounts",
  kind: "ServiceAccount",
  namespaced: true,
};

interface NodeObject extends KubeObject {
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

interface Bins {
  containerd: string;
  ctr: string;
  podman: string;
  kubelet: string;
  controllerManager: string;
  scheduler: string;
  proxy: string;
  coredns: string;
}

class KubeNodeProcesses implements KubeNode {
  readonly api: KubeApiServer;
  readonly dir: string;
  readonly nodeAddress: string;
  startupMs = 0;
  readonly #bins: Bins;
  readonly #socket: string;
  readonly #processes: Record<NodeComponent, LoggedProcess>;
  #disposed = false;
  #volumes = 0;

  constructor(api: KubeApiServer, dir: string, nodeAddress: string, bins: Bins) {
    this.api = api;
    this.dir = dir;
    this.nodeAddress = nodeAddress;
    this.#bins = bins;
    this.#socket = join(dir, "containerd.sock");
    const logged = (name: NodeComponent, bin: string) =>
      new LoggedProcess(name, bin, join(dir, `${name}.log`));
    this.#processes = {
      "containerd": logged("containerd", bins.containerd),
      "coredns": logged("coredns", bins.coredns),
      "kubelet": logged("kubelet", bins.kubelet),
      "kube-controller-manager": logged("kube-controller-manager", bins.controllerManager),
      "kube-scheduler": logged("kube-scheduler", bins.scheduler),
      "kube-proxy": logged("kube-proxy", bins.proxy),
    };
  }

  async start(): Promise<void> {
    await Deno.writeTextFile(join(this.dir, "ca.crt"), this.api.caCertPem);
    await this.#writeCniConfig();
    await this.#startContainerd();
    await this.#loadPauseImage();
    await this.#processes["kube-controller-manager"].start([
      `--kubeconfig=${this.api.kubeconfigPath}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${freePort()}`,
      "--leader-elect=false",
      // Published to every namespace as kube-root-ca.crt, which pods verify the server with.
      `--root-ca-file=${join(this.dir, "ca.crt")}`,
      "--use-service-account-credentials=false",
    ]);
    await this.#processes["kube-scheduler"].start([
      `--kubeconfig=${this.api.kubeconfigPath}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${freePort()}`,
      "--leader-elect=false",
    ]);
    await this.#startDns();
    await this.#startKubelet();
    await this.#startKubeProxy();
    await this.#waitReady();
    await this.#waitDns();
  }

  async loadImage(ref: string, name = ref): Promise<void> {
    const tar = join(this.dir, `image-${crypto.randomUUID()}.tar`);
    try {
      await run(this.#bins.podman, ["save", "--format", "oci-archive", "-o", tar, ref]);
      await this.#ctr("images", "import", tar);
      if (name !== ref) await this.#ctr("images", "tag", "--force", ref, name);
    } finally {
      await Deno.remove(tar).catch(() => {});
    }
  }

  async addVolumes(count: number, size = "10Gi"): Promise<string[]> {
    using client = new KubeClient(this.api.adminConfig);
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = `fleet-test-volume-${++this.#volumes}`;
      const path = join(this.dir, "volumes", name);
      await Deno.mkdir(path, { recursive: true });
      await Deno.chmod(path, 0o1777);
      await client.create(PersistentVolumeType, {
        metadata: { name },
        spec: {
          capacity: { storage: size },
          accessModes: ["ReadWriteOnce"],
          persistentVolumeReclaimPolicy: "Retain",
          hostPath: { path, type: "Directory" },
        },
      });
      names.push(name);
    }
    return names;
  }

  async memory(): Promise<Record<NodeComponent, number>> {
    const rss = async (process: LoggedProcess): Promise<number> => {
      const pid = process.pid;
      if (pid === undefined) return 0;
      const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
      return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) * 1024;
    };
    const entries = await Promise.all(
      Object.entries(this.#processes).map(async ([name, p]) => [name, await rss(p)] as const),
    );
    return Object.fromEntries(entries) as Record<NodeComponent, number>;
  }

  logTail(component: NodeComponent, lines = LOG_TAIL_LINES): Promise<string> {
    return this.#processes[component].logTail(lines);
  }

  async podLog(namespace: string, name: string): Promise<string> {
    const root = join(this.dir, "pod-logs");
    const texts: string[] = [];
    for await (const pod of Deno.readDir(root)) {
      if (!pod.name.startsWith(`${namespace}_${name}_`)) continue;
      for await (const container of Deno.readDir(join(root, pod.name))) {
        for await (const file of Deno.readDir(join(root, pod.name, container.name))) {
          const text = await Deno.readTextFile(join(root, pod.name, container.name, file.name));
          texts.push(`${container.name}/${file.name}:\n${text}`);
        }
      }
    }
    return texts.join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    // Nothing may recreate pods while the kubelet tears them (and their network) down.
    await this.#processes["kube-controller-manager"].stop();
    await this.#processes["kube-scheduler"].stop();
    if (this.#processes.kubelet.running) await this.#deletePods();
    await this.#processes.kubelet.stop();
    await this.#processes["kube-proxy"].stop();
    await this.#processes.coredns.stop();
    await run(this.#bins.proxy, ["--cleanup"]).catch(() => {});
    if (this.#processes.containerd.running) await this.#removeContainers();
    await this.#processes.containerd.stop();
    await run("ip", ["link", "del", BRIDGE]).catch(() => {});
    await removeKubeletChains();
    await this.#removeLogLinks();
    await this.#unmountAll();
    await this.api[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** The kubelet links every container's log from /var/log/containers (not configurable). */
  async #removeLogLinks(): Promise<void> {
    const links = await Array.fromAsync(Deno.readDir(CONTAINER_LOG_LINKS)).catch(() => []);
    for (const link of links) {
      const path = join(CONTAINER_LOG_LINKS, link.name);
      const target = await Deno.readLink(path).catch(() => "");
      if (target.startsWith(`${this.dir}/`)) await Deno.remove(path).catch(() => {});
    }
  }

  /** What the kubelet left mounted in our folder (its root, pods' volumes), deepest first. */
  async #unmountAll(): Promise<void> {
    const mounts = (await Deno.readTextFile("/proc/mounts")).split("\n")
      .map((line) => line.split(" ")[1] ?? "")
      .filter((path) => path.startsWith(`${this.dir}/`));
    for (const path of mounts.reverse()) {
      await run("umount", [path]).catch(() => run("umount", ["--lazy", path])).catch(() => {});
    }
  }

  async #ctr(...args: string[]): Promise<string> {
    return await run(this.#bins.ctr, ["--address", this.#socket, "-n", CRI_NAMESPACE, ...args]);
  }

  async #startContainerd(): Promise<void> {
    const config = join(this.dir, "containerd.toml");
    await Deno.writeTextFile(
      config,
      `version = 2
root = "${join(this.dir, "containerd")}"
state = "${join(this.dir, "containerd-state")}"
[grpc]
  address = "${this.#socket}"
[ttrpc]
  address = "${this.#socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(this.dir, "containerd-opt")}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  # Pods' oom_score_adj no lower than containerd's own: the kubelet asks -998 for sandboxes,
  # which needs CAP_SYS_RESOURCE, and sandboxed machines like these test VMs drop it (runc
  # then fails with "failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${join(this.dir, "cni")}"
`,
    );
    const containerd = this.#processes.containerd;
    await containerd.start(["--config", config]);
    const outcome = await waitFor("containerd", async () => {
      if (containerd.exited !== undefined) return "exited during start-up";
      return await this.#ctr("version").then(() => "ready", () => undefined);
    }, CONTAINERD_READY_TIMEOUT_MS).catch(() =>
      `did not answer within ${CONTAINERD_READY_TIMEOUT_MS / 1000} s`
    );
    if (outcome !== "ready") {
      throw new KubeNodeError(
        `containerd ${outcome}; last log lines:\n${await containerd.logTail(LOG_TAIL_LINES)}`,
      );
    }
  }

  /** Builds the sandbox image with podman once per machine, then imports it. */
  async #loadPauseImage(): Promise<void> {
    const exists = await run(this.#bins.podman, ["image", "exists", PAUSE_IMAGE])
      .then(() => true, () => false);
    if (!exists) {
      const context = join(this.dir, "pause");
      await Deno.mkdir(context);
      await Deno.copyFile(
        requireFile("/bin/busybox", "apt-get install busybox-static"),
        join(context, "busybox"),
      );
      await Deno.writeTextFile(join(context, "Containerfile"), PAUSE_CONTAINERFILE);
      await run(this.#bins.podman, ["build", "-q", "-t", PAUSE_IMAGE, context]);
    }
    await this.loadImage(PAUSE_IMAGE);
  }

  async #writeCniConfig(): Promise<void> {
    await Deno.mkdir(join(this.dir, "cni"));
    const network = {
      cniVersion: "1.0.0",
      name: "fleet-kube",
      plugins: [
        {
          type: "bridge",
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: true,
          // A pod reaching a Service that leads back to itself.
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: join(this.dir, "cni-ipam"),
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    };
    await Deno.writeTextFile(
      join(this.dir, "cni", "10-fleet-kube.conflist"),
      JSON.stringify(network, null, 2),
    );
  }

  /** CoreDNS on the node's address: the API server's names, the host's resolver for the rest. */
  async #startDns(): Promise<void> {
    const corefile = join(this.dir, "Corefile");
    await Deno.writeTextFile(
      corefile,
      `.:53 {
    bind ${this.nodeAddress}
    errors
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${this.api.kubeconfigPath} fleet-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
}
`,
    );
    await this.#processes.coredns.start(["-conf", corefile]);
  }

  /** CoreDNS answers once its first read of Services and endpoints is done (a few seconds). */
  async #waitDns(): Promise<void> {
    const coredns = this.#processes.coredns;
    const nameServer = { ipAddr: this.nodeAddress, port: 53 };
    const outcome = await waitFor("CoreDNS", async () => {
      if (coredns.exited !== undefined) return "exited during start-up";
      const name = `kubernetes.default.svc.${CLUSTER_DOMAIN}`;
      return await Deno.resolveDns(name, "A", { nameServer }).then(() => "ready", () => undefined);
    }, DNS_READY_TIMEOUT_MS).catch(() => `did not answer within ${DNS_READY_TIMEOUT_MS / 1000} s`);
    if (outcome !== "ready") {
      throw new KubeNodeError(
        `CoreDNS ${outcome}; last log lines:\n${await coredns.logTail(LOG_TAIL_LINES)}`,
      );
    }
  }

  async #startKubelet(): Promise<void> {
    const config = {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      address: this.nodeAddress,
      port: freePort(),
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      healthzPort: freePort(),
      containerRuntimeEndpoint: `unix://${this.#socket}`,
      // containerd 1.6 cannot tell the kubelet its cgroup driver (the RuntimeConfig call
      // came with 2.0), so the kubelet uses this one; runc's default is cgroupfs too.
      cgroupDriver: "cgroupfs",
      failSwapOn: false,
      // Not the default -999, which needs CAP_SYS_RESOURCE (see restrict_oom_score_adj).
      oomScoreAdj: 0,
      // The API server calls the kubelet (logs, exec) without a client certificate.
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: "AlwaysAllow" },
      podLogsDir: join(this.dir, "pod-logs"),
      volumePluginDir: join(this.dir, "volume-plugins"),
      // A shared test machine's disk and memory are not this node's to guard.
      evictionHard: {
        "memory.available": "1Mi",
        "nodefs.available": "1%",
        "imagefs.available": "1%",
        "nodefs.inodesFree": "1%",
      },
      // Loaded images cannot be pulled again: never collect them.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      clusterDomain: CLUSTER_DOMAIN,
      clusterDNS: [this.nodeAddress],
      resolvConf: "/etc/resolv.conf",
    };
    const configPath = join(this.dir, "kubelet.yaml");
    await Deno.writeTextFile(configPath, toYaml(config));
    await this.#processes.kubelet.start([
      `--config=${configPath}`,
      `--kubeconfig=${this.api.kubeconfigPath}`,
      `--root-dir=${join(this.dir, "kubelet")}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${this.nodeAddress}`,
    ]);
  }

  async #startKubeProxy(): Promise<void> {
    const config = {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      mode: "iptables",
      clientConnection: { kubeconfig: this.api.kubeconfigPath },
      hostnameOverride: NODE_NAME,
      clusterCIDR: POD_CIDR,
      healthzBindAddress: `127.0.0.1:${freePort()}`,
      metricsBindAddress: `127.0.0.1:${freePort()}`,
      // Leave the host's conntrack table sizes and localhost routing alone.
      conntrack: { maxPerCore: 0 },
      iptables: { localhostNodePorts: false },
    };
    const configPath = join(this.dir, "kube-proxy.yaml");
    await Deno.writeTextFile(configPath, toYaml(config));
    await this.#processes["kube-proxy"].start([`--config=${configPath}`]);
  }

  async #waitReady(): Promise<void> {
    using client = new KubeClient(this.api.adminConfig, { requestTimeoutMs: 5000 });
    let last = "not registered yet";
    const outcome = await waitFor(
      "the test node",
      async () => {
        for (const [name, process] of Object.entries(this.#processes)) {
          if (process.exited !== undefined) return `exited:${name}`;
        }
        const node = await client.get<NodeObject>(NodeType, NODE_NAME);
        const ready = node?.status?.conditions?.find((c) => c.type === "Ready");
        if (ready) last = `Ready=${ready.status}: ${ready.message ?? ""}`;
        if (ready?.status !== "True") return undefined;
        const account = await client.get(ServiceAccountType, "default", "default");
        last = "no default ServiceAccount yet";
        return account ? "ready" : undefined;
      },
      NODE_READY_TIMEOUT_MS,
      500,
    ).catch(() => "timed out");
    if (outcome === "ready") return;
    const component: NodeComponent = outcome.startsWith("exited:")
      ? outcome.slice("exited:".length) as NodeComponent
      : "kubelet";
    const why = outcome.startsWith("exited:")
      ? `${component} exited during start-up`
      : `node ${NODE_NAME} was not ready within ${NODE_READY_TIMEOUT_MS / 1000} s (${last})`;
    throw new KubeNodeError(
      `The test Kubernetes node did not start: ${why}; last ${component} log lines:\n` +
        await this.logTail(component),
    );
  }

  /** Deletes every pod and waits until the kubelet has stopped their containers. */
  async #deletePods(): Promise<void> {
    using client = new KubeClient(this.api.adminConfig, { requestTimeoutMs: 5000 });
    const pods = await client.list(PodType).catch(() => ({ items: [] }));
    for (const pod of pods.items) {
      const name = pod.metadata?.name;
      if (name === undefined) continue;
      await client.delete(PodType, name, {
        namespace: pod.metadata?.namespace,
        gracePeriodSeconds: 1,
      })
        .catch(() => {});
    }
    await waitFor("the test node's pods to stop", async () => {
      const tasks = await this.#ctr("tasks", "ls", "-q");
      return tasks.trim() === "" ? true : undefined;
    }, PODS_GONE_TIMEOUT_MS).catch(() => {});
  }

  /** Kills what the kubelet left running: shims outlive containerd otherwise. */
  async #removeContainers(): Promise<void> {
    const ids = (await this.#ctr("containers", "ls", "-q").catch(() => "")).split("\n")
      .filter((id) => id !== "");
    for (const id of ids) {
      await this.#ctr("tasks", "kill", "-s", "SIGKILL", id).catch(() => {});
      await waitFor(
        `container ${id} to stop`,
        () =>
          this.#ctr("tasks", "delete", id).then(
            () => true,
            (err: Error) => /not found/.test(err.message) ? true : undefined,
          ),
        10_000,
      ).catch(() => {});
      await this.#ctr("containers", "delete", id).catch(() => {});
    }
  }
}
