/**
 * The Fleet control plane installed by its Helm chart on a real single-node cluster
 * (testing/kube_node.ts), as an OKD user installs it: the fleet image (amd64, as
 * `fleet operator image` builds it) and a nats-server image loaded into the node's containerd,
 * the Secrets of the README's "Install on OKD", `helm install` with a values file, and HAProxy on
 * the host terminating TLS in front of the NATS Service's WebSocket port, as the OpenShift
 * router does for the chart's Route.
 *
 * The OpenID provider runs on the host with https at the node's address (the callout and the
 * operator refuse a plain-http issuer beyond loopback), its certificate from a test CA the pods
 * trust through the chart's `trustedCA` ConfigMap, as a company CA would be. For the
 * cluster-install story and its bench.
 */
import { join } from "node:path";
import YAML from "yaml";
import { KubeClient } from "../adapters/kube/client.ts";
import { ConfigMapType, NamespaceType } from "../adapters/kube/types.ts";
import type { KubeObject, ResourceType } from "../adapters/kube/types.ts";
import type { PodmanClient } from "../adapters/podman/mod.ts";
import { fleetCacheDir } from "../adapters/cache_dir.ts";
import { waitFor } from "../adapters/timers.ts";
import { generateSeeds, publicKeyOfSeed } from "../callout/keys.ts";
import { crdsYaml } from "../crd/crds.ts";
import { helmChart } from "../operator/helm_chart.ts";
import { OPERATOR_LEASE_NAME } from "../operator/kube_lease.ts";
import { LeaseType } from "../operator/kube_resources.ts";
import { buildImageIndex, bundleProgram } from "../operator/image_index.ts";
import { type HelmResult, runHelm } from "./helm.ts";
import { type KubeNode, PodType, ServiceType, startKubeNode } from "./kube_node.ts";
import { buildNatsImage } from "./nats_image.ts";
import { type MachineUser, startTestProvider, type TestProvider } from "./oidc_provider.ts";
import { type EdgeProxy, startEdgeProxy } from "./haproxy.ts";
import { issueTestCertificate, makeTestCertificates } from "./tls.ts";

/** The release's namespace and name. */
export const CONTROL_PLANE_NAMESPACE = "fleet";
const RELEASE = "fleet";
const FLEET_IMAGE = "localhost/fleet";
const NATS_IMAGE = { repository: "localhost/fleet-nats", tag: "2.10.27" };
/** The control plane's pods: one NATS server, two callouts, two operators. */
export const CONTROL_PLANE_PODS = 5;
/** Pods start slowly on 2 busy cores. */
const PODS_READY_MS = 240_000;

const SecretType: ResourceType = {
  group: "",
  version: "v1",
  plural: "secrets",
  kind: "Secret",
  namespaced: true,
};

interface Pod extends KubeObject {
  spec?: { containers?: { image?: string }[] };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number }[];
  };
}

/** The installed control plane; `await using` stops the route, the provider and the node. */
export interface ClusterControlPlane extends AsyncDisposable {
  readonly node: KubeNode;
  /** The cluster admin's client. */
  readonly client: KubeClient;
  /** `["--kubeconfig", <the admin's kubeconfig>]`, for `fleet ... --target kube` and helm. */
  readonly kubeconfig: string[];
  /** The OpenID provider, `https://<node address>:<port>`. */
  readonly idp: TestProvider;
  /** The CA of the provider's certificate (the "company CA"). */
  readonly idpCaFile: string;
  /** The operator's machine user. */
  readonly operatorUser: MachineUser;
  /** The route stand-in: `route.url` is what devices put in `nats.urls`. */
  readonly route: EdgeProxy;
  /** The CA of the route's certificate, which devices are given. */
  readonly routeCaFile: string;
  /** The image tag installed, then the one of the last {@linkcode upgrade}. */
  readonly tag: string;
  /** From `helm install` to every pod of the release Ready. */
  readonly installMs: number;
  /**
   * Loads the fleet image under `tag` and runs `helm upgrade` to it; resolves when helm has
   * returned (the pods roll after). {@linkcode waitForPods} waits for the roll.
   */
  upgrade(tag: string): Promise<void>;
  /** Waits until exactly the release's pods run, all Ready, the fleet ones on {@linkcode tag}. */
  waitForPods(): Promise<void>;
  /**
   * The name of the operator pod holding the leader Lease; undefined while none does (a
   * leader that stops releases it, leaving the holder empty).
   */
  leader(): Promise<string | undefined>;
  /** `helm uninstall`. */
  uninstall(): Promise<void>;
}

/** Options of {@linkcode startClusterControlPlane}. */
export interface ClusterControlPlaneOptions {
  /**
   * The CA that signs the provider's and the route's certificates (a process started with
   * `DENO_CERT` naming it trusts both); a new one for each otherwise.
   */
  ca?: { caFile: string; caKeyFile: string };
}

/**
 * Builds the images (the program bundled into `dir`), starts the node and the provider,
 * creates the namespace (restricted Pod Security enforced) and the Secrets, installs the chart
 * and waits for every pod to be Ready, then starts the route stand-in.
 *
 * @throws {Error} when helm fails or warns of Pod Security, or the pods are not Ready in time
 *   (with their states, the logs of those not Ready and the kubelet's).
 */
export async function startClusterControlPlane(
  dir: string,
  podman: PodmanClient,
  options: ClusterControlPlaneOptions = {},
): Promise<ClusterControlPlane> {
  const tag = "1.0.0-test";
  const [built] = await buildImageIndex({
    podman,
    name: `${FLEET_IMAGE}:${tag}`,
    arches: ["amd64"],
    version: tag,
    bundle: await bundleProgram(dir),
    cacheDir: fleetCacheDir(),
  });
  const natsRef = `${NATS_IMAGE.repository}:${NATS_IMAGE.tag}`;
  await buildNatsImage(podman, natsRef);

  const stack = new AsyncDisposableStack();
  try {
    const node = stack.use(await startKubeNode());
    await node.loadImage(built!.ref, `${FLEET_IMAGE}:${tag}`);
    await node.loadImage(natsRef);
    const client = new KubeClient(node.api.adminConfig);
    stack.defer(() => client[Symbol.dispose]());
    const certificate = (name: string, altNames: string[]) =>
      options.ca
        ? issueTestCertificate(dir, name, options.ca, altNames)
        : makeTestCertificates(dir, name, altNames);
    const idpCerts = await certificate("idp", [`IP:${node.nodeAddress}`]);
    const idp = stack.use(
      await startTestProvider({
        host: node.nodeAddress,
        tls: { certFile: idpCerts.certFile, keyFile: idpCerts.keyFile },
        accessTokenTtlSeconds: 600,
      }),
    );
    const operatorUser = await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] });
    const plane = new ControlPlane(node, client, idp, idpCerts.caFile, operatorUser, built!.ref);
    const valuesFile = await plane.prepare(dir, tag);
    const installStart = performance.now();
    await plane.helm("install", RELEASE, join(dir, "fleet"), "-f", valuesFile);
    await plane.waitForPods();
    plane.installMs = Math.round(performance.now() - installStart);

    const service = await client.get<{ spec?: { clusterIP?: string } }>(
      ServiceType,
      `${RELEASE}-nats`,
      CONTROL_PLANE_NAMESPACE,
    );
    const routeCerts = await certificate("route", ["IP:127.0.0.1"]);
    plane.route = stack.use(
      await startEdgeProxy({
        backend: `${service?.spec?.clusterIP}:8080`,
        certFile: routeCerts.certFile,
        keyFile: routeCerts.keyFile,
      }),
    );
    plane.routeCaFile = routeCerts.caFile;
    plane.parts = stack.move();
    return plane;
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}

const ready = (pod: Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

function describe(pods: Pod[]): string {
  return pods.map((p) =>
    `${p.metadata?.name} ${p.status?.phase} ready=${ready(p)} ${p.spec?.containers?.[0]?.image} ` +
    `restarts=${p.status?.containerStatuses?.map((c) => c.restartCount).join(",")}` +
    (p.metadata?.deletionTimestamp ? " terminating" : "")
  ).join("\n");
}

class ControlPlane implements ClusterControlPlane {
  readonly kubeconfig: string[];
  tag = "";
  installMs = 0;
  route!: EdgeProxy;
  routeCaFile = "";
  parts: AsyncDisposableStack | undefined;
  #chartDir = "";
  #valuesFile = "";

  constructor(
    readonly node: KubeNode,
    readonly client: KubeClient,
    readonly idp: TestProvider,
    readonly idpCaFile: string,
    readonly operatorUser: MachineUser,
    readonly imageRef: string,
  ) {
    this.kubeconfig = ["--kubeconfig", node.api.kubeconfigPath];
  }

  /** The namespace, Secrets, ConfigMap, volume, chart and values an install needs. */
  async prepare(dir: string, tag: string): Promise<string> {
    this.tag = tag;
    const ns = CONTROL_PLANE_NAMESPACE;
    await this.client.create(NamespaceType, {
      metadata: {
        name: ns,
        labels: {
          "pod-security.kubernetes.io/enforce": "restricted",
          "pod-security.kubernetes.io/warn": "restricted",
        },
      },
    });
    const secret = (name: string, stringData: Record<string, string>) =>
      this.client.create(SecretType, { metadata: { name, namespace: ns }, stringData });
    const { issuerSeed, xkeySeed } = generateSeeds();
    await secret("fleet-callout-keys", {
      "issuer.nk": issuerSeed,
      "xkey.nk": xkeySeed,
      password: crypto.randomUUID().replaceAll("-", ""),
    });
    const natsCerts = await makeTestCertificates(dir, "nats", [
      `DNS:${RELEASE}-nats-headless.${ns}.svc`,
      `DNS:*.${RELEASE}-nats-headless.${ns}.svc`,
    ]);
    await secret("fleet-nats-tls", {
      "tls.crt": await Deno.readTextFile(natsCerts.certFile),
      "tls.key": await Deno.readTextFile(natsCerts.keyFile),
      "ca.crt": await Deno.readTextFile(natsCerts.caFile),
    });
    await secret("fleet-operator-oidc", { key: JSON.stringify(this.operatorUser.privateKeyJwk) });
    await this.client.create(ConfigMapType, {
      metadata: { name: "company-ca", namespace: ns },
      data: { "ca-bundle.crt": await Deno.readTextFile(this.idpCaFile) },
    });
    await this.node.addVolumes(1);

    this.#chartDir = join(dir, "fleet");
    for (const [path, content] of helmChart({ version: tag, crdsYaml: crdsYaml() })) {
      const target = join(this.#chartDir, path);
      await Deno.mkdir(join(target, ".."), { recursive: true });
      await Deno.writeTextFile(target, content);
    }
    const idp = this.idp;
    this.#valuesFile = join(dir, "values.yaml");
    await Deno.writeTextFile(
      this.#valuesFile,
      YAML.stringify({
        image: { repository: FLEET_IMAGE, tag, pullPolicy: "Never" },
        trustedCA: { configMap: "company-ca" },
        nats: {
          oidc: {
            issuer: idp.issuer,
            keySecret: "fleet-operator-oidc",
            clientId: this.operatorUser.clientId,
            audience: idp.audience,
          },
          server: {
            image: { ...NATS_IMAGE, pullPolicy: "Never" },
            tls: { secret: "fleet-nats-tls" },
            jetstream: { size: "1Gi" },
          },
        },
        callout: {
          keysSecret: "fleet-callout-keys",
          issuer: publicKeyOfSeed(issuerSeed),
          xkey: publicKeyOfSeed(xkeySeed),
          oidc: {
            issuer: idp.issuer,
            audience: idp.audience,
            deviceIdClaim: idp.deviceIdClaim,
            roleClaim: "urn:zitadel:iam:org:project:roles",
          },
        },
        // The route is HAProxy on the host.
        route: { kind: "none" },
      }),
    );
    return this.#valuesFile;
  }

  /** `helm <args> -n <namespace> --kubeconfig ...`; throws on failure or a Pod Security warning. */
  async helm(...args: string[]): Promise<HelmResult> {
    const result = await runHelm([...args, "-n", CONTROL_PLANE_NAMESPACE, ...this.kubeconfig]);
    if (!result.success || /PodSecurity/.test(result.stderr)) {
      throw new Error(`helm ${args[0]} failed: ${result.stderr}`);
    }
    return result;
  }

  async upgrade(tag: string): Promise<void> {
    await this.node.loadImage(this.imageRef, `${FLEET_IMAGE}:${tag}`);
    await this.helm(
      ...["upgrade", RELEASE, this.#chartDir, "-f", this.#valuesFile],
      ...["--set", `image.tag=${tag}`],
    );
    this.tag = tag;
  }

  async waitForPods(): Promise<void> {
    let last: Pod[] = [];
    try {
      await waitFor(`the ${CONTROL_PLANE_PODS} pods of the release to be Ready`, async () => {
        last = (await this.client.list<Pod>(PodType, { namespace: CONTROL_PLANE_NAMESPACE }))
          .items;
        const fleetPods = last.filter((p) =>
          p.spec?.containers?.[0]?.image?.startsWith(`${FLEET_IMAGE}:`)
        );
        return last.length === CONTROL_PLANE_PODS && last.every(ready) &&
          fleetPods.every((p) => p.spec?.containers?.[0]?.image === `${FLEET_IMAGE}:${this.tag}`);
      }, PODS_READY_MS);
    } catch (err) {
      const logs = await Promise.all(
        last.filter((p) => !ready(p)).map(async (p) => {
          const log = await this.node.podLog(CONTROL_PLANE_NAMESPACE, p.metadata?.name ?? "");
          return `--- ${p.metadata?.name}:\n${log.slice(-3000)}`;
        }),
      );
      throw new Error(
        `${(err as Error).message}\n${describe(last)}\n${logs.join("\n")}\nkubelet:\n${await this
          .node.logTail("kubelet")}`,
        { cause: err },
      );
    }
  }

  async leader(): Promise<string | undefined> {
    const lease = await this.client.get<{ spec?: { holderIdentity?: string } }>(
      LeaseType,
      OPERATOR_LEASE_NAME,
      CONTROL_PLANE_NAMESPACE,
    );
    return lease?.spec?.holderIdentity || undefined;
  }

  async uninstall(): Promise<void> {
    await this.helm("uninstall", RELEASE);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.parts?.disposeAsync();
  }
}
