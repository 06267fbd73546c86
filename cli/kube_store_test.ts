/**
 * What `fleet apply --target kube` and kubectl may apply, against a real kube-apiserver with the
 * Deployment CRD: unknown fields are refused with their path, never silently dropped.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { KubeApiError, KubeClient } from "../adapters/kube/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { API_VERSION, buildDeployment, DEVICE_ID_LABEL } from "../core/mod.ts";
import { deviceResource } from "../crd/device_resource.ts";
import { OPERATOR_FIELD_MANAGER } from "../operator/kube_source.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { deploymentCrd } from "../crd/crds.ts";
import { installCrds } from "../operator/kube_install.ts";
import { CrdType, DeploymentType, DeviceType } from "../operator/kube_resources.ts";
import { eventually } from "../testing/eventually.ts";
import { type TempDir, tempDir } from "../testing/temp_dir.ts";
import { type KubeApiServer, startKubeApiServer } from "../testing/kube_apiserver.ts";
import { createNamespace, sharedServerTest } from "../testing/kube.ts";
import { DeploymentRefusedError, KubeDeploymentStore } from "./kube_store.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** The file's API server, with an audit log of every request's URI. */
interface AuditedKube {
  server: KubeApiServer;
  client: KubeClient;
  auditLog: string;
  dir: TempDir;
}

let started: Promise<AuditedKube> | undefined;

/** The file's API server, started on first use, with the CRDs installed. */
function audited(): Promise<AuditedKube> {
  started ??= (async () => {
    const dir = await tempDir("fleet-kube-audit-");
    const policy = join(dir.path, "policy.yaml");
    const auditLog = join(dir.path, "audit.log");
    await Deno.writeTextFile(
      policy,
      "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n",
    );
    const server = await startKubeApiServer({
      extraArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`],
    });
    const client = new KubeClient(server.adminConfig);
    await installCrds(client, silentLogger);
    return { server, client, auditLog, dir };
  })();
  return started;
}

async function kube(): Promise<KubeClient> {
  return (await audited()).client;
}

/** The request URIs of the audit log's PATCH requests whose URI contains `part`. */
async function patchesTo(part: string): Promise<string[]> {
  const text = await Deno.readTextFile((await audited()).auditLog);
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
    .filter((event) => event.verb === "patch" && String(event.requestURI).includes(part))
    .map((event) => String(event.requestURI));
}

/** A Deployment object as kubectl would send it; `service` adds to its one service. */
function object(namespace: string, name: string, service: Record<string, unknown> = {}) {
  return {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, namespace },
    spec: {
      targetSelector: { matchLabels: { site: "lab" } },
      score: {
        type: "PodmanV0",
        data: { services: [{ name, image: "localhost/web:1", ...service }] },
      },
    },
  };
}

Deno.test(
  "a Deployment with an unknown field is refused with its path, and the CRD keeps no unknown field",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "strict");
    const typo = object(namespace, "web", { restartPolicyy: "always" });
    // Server-side apply, as fleet apply and kubectl apply --server-side send it.
    await assert.rejects(
      client.apply(DeploymentType, typo, { fieldManager: "kubectl", strictFields: true }),
      (error: unknown) => {
        assert.ok(error instanceof KubeApiError, String(error));
        assert.match(
          error.message,
          /\.spec\.score\.data\.services\[name="web"\]\.restartPolicyy: field not declared in schema/,
        );
        return true;
      },
    );
    assert.equal(await client.get(DeploymentType, "web", namespace), undefined);
    // The schema declares every field of the workload (no x-kubernetes-preserve-unknown-fields):
    // a plain create drops the typo, which is why kubectl's strict validation refuses it.
    const created = await client.create<ReturnType<typeof object>>(DeploymentType, typo);
    assert.deepEqual(Object.keys(created.spec.score.data.services[0]!).sort(), [
      "env",
      "image",
      "name",
      "ports",
      "restartPolicy",
      "volumes",
    ]);
  },
);

Deno.test(
  "the API server refuses a host path with '..' or into the agent's own files, with the CRD's message",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "hostpath");
    const mounting = (hostPath: string) =>
      object(namespace, "web", { volumes: [{ hostPath, containerPath: "/data" }] });
    const cases: [string, RegExp][] = [
      [
        "/srv/../etc/fleet-agent",
        /host path '\/srv\/\.\.\/etc\/fleet-agent' has '\.' or '\.\.' segments/,
      ],
      ["/etc/fleet-agent/device-key.json", /is or holds the Fleet agent's own files/],
      ["/", /host path '\/' is or holds the Fleet agent's own files/],
      ["/var/lib", /host path '\/var\/lib' is or holds/],
    ];
    for (const [hostPath, message] of cases) {
      await assert.rejects(
        client.apply(DeploymentType, mounting(hostPath), { fieldManager: "kubectl" }),
        (error: unknown) => {
          assert.ok(error instanceof KubeApiError, String(error));
          assert.match(error.message, message, hostPath);
          return true;
        },
      );
    }
    assert.equal(await client.get(DeploymentType, "web", namespace), undefined);
    // A path beside them is the device policy's to judge.
    await client.apply(DeploymentType, mounting("/etc/fleet-agent2/data"), {
      fieldManager: "kubectl",
    });
  },
);

Deno.test(
  "the API server takes a Progressive rollout as written, and refuses a bad duration or percentage",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "rollout");
    const rollout = {
      strategy: "Progressive",
      batches: [
        { selector: { matchLabels: { ring: "canary" } }, limit: 1 },
        { limit: "50%", approval: "Manual" },
      ],
      successThreshold: "90%",
      maxFailures: 1,
      bake: "15m",
      deviceTimeout: "20m",
      disruptionBudget: { groupBy: ["site"], maxUnavailable: "25%" },
      onFailure: "Pause",
    };
    const progressive = (extra: Record<string, unknown>) => {
      const deployment = object(namespace, "web");
      return {
        ...deployment,
        spec: { ...deployment.spec, minReadySeconds: 30, rollout: { ...rollout, ...extra } },
      };
    };
    const applied = await client.apply<ReturnType<typeof progressive>>(
      DeploymentType,
      progressive({}),
      { fieldManager: "kubectl", strictFields: true },
    );
    assert.deepEqual(applied.spec.rollout, rollout, "counts and percentages both kept");
    assert.equal(applied.spec.minReadySeconds, 30);
    for (
      const [extra, message] of [
        [{ bake: "15 minutes" }, /spec\.rollout\.bake/],
        [{ successThreshold: "0%" }, /spec\.rollout\.successThreshold/],
        [{ onFailure: "Ignore" }, /spec\.rollout\.onFailure/],
      ] as const
    ) {
      await assert.rejects(
        client.apply(DeploymentType, progressive(extra), { fieldManager: "kubectl" }),
        (error: unknown) => {
          assert.ok(error instanceof KubeApiError, String(error));
          assert.match(error.message, message, JSON.stringify(extra));
          return true;
        },
      );
    }
  },
);

Deno.test(
  "the API server takes a service healthcheck with its defaults filled, and refuses an empty command or a bad interval",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "health");
    const checked = (healthcheck: Record<string, unknown>) =>
      object(namespace, "web", { healthcheck });
    const applied = await client.apply<ReturnType<typeof checked>>(
      DeploymentType,
      checked({ command: ["wget", "-q", "http://127.0.0.1/"], interval: "10s" }),
      { fieldManager: "kubectl", strictFields: true },
    );
    const [service] = applied.spec.score.data.services as Record<string, unknown>[];
    assert.deepEqual(service?.["healthcheck"], {
      command: ["wget", "-q", "http://127.0.0.1/"],
      interval: "10s",
      timeout: "30s",
      retries: 3,
      startPeriod: "0s",
    });
    for (
      const [healthcheck, message] of [
        [{ command: [] }, /healthcheck\.command/],
        [{ command: ["true"], interval: "10 seconds" }, /healthcheck\.interval/],
      ] as const
    ) {
      await assert.rejects(
        client.apply(DeploymentType, checked(healthcheck), { fieldManager: "kubectl" }),
        (error: unknown) => {
          assert.ok(error instanceof KubeApiError, String(error));
          assert.match(error.message, message, JSON.stringify(healthcheck));
          return true;
        },
      );
    }
  },
);

/** Runs `fleet <args>` against the shared API server. */
async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args, "--kubeconfig", (await audited()).server.kubeconfigPath],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test(
  "fleet apply -f --target kube refuses the unknown field of a file and applies the rest",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "cli");
    await using dir = await tempDir("fleet-kube-apply-");
    const path = join(dir.path, "both.yaml");
    await Deno.writeTextFile(
      path,
      [
        YAML.stringify(object(namespace, "web", { restartPolicyy: "always" })),
        YAML.stringify(object(namespace, "api")),
      ].join("---\n"),
    );
    const result = await fleet("apply", "-f", path, "--target", "kube");
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, `deployment ${namespace}/api created (generation 1)\n`);
    assert.equal(
      result.stderr,
      `ERROR ${path} document 1: deployment ${namespace}/web refused: ` +
        "spec.score.data.services[0].restartPolicyy: unknown field\n",
    );
    assert.equal(await client.get(DeploymentType, "web", namespace), undefined);
  },
);

Deno.test(
  "fleet device label --target kube sets the Device object's labels, needs --overwrite to change one, copies reported labels, and fleet get devices shows both",
  sharedServerTest,
  async () => {
    const client = await kube();
    // What the operator writes for a device that reports site=vault.
    await client.apply(DeviceType, deviceResource(testDeviceInfo("lbl-1", { site: "vault" })), {
      fieldManager: OPERATOR_FIELD_MANAGER,
      force: true,
    });
    const label = (...args: string[]) => fleet("device", "label", ...args, "--target", "kube");
    const ok = async (args: string[], stdout: string) => {
      const run = await label(...args);
      assert.deepEqual([run.code, run.stdout, run.stderr], [0, stdout, ""]);
    };
    await ok(["lbl-1", "site=lab", "rack=r1"], "device lbl-1 labelled: rack=r1,site=lab\n");
    const refused = await label("lbl-1", "site=shop");
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /Device lbl-1 already has site=lab: pass --overwrite/);
    await ok(["lbl-1", "site=shop", "rack-", "--overwrite"], "device lbl-1 labelled: site=shop\n");
    const object = await client.get<{ metadata: { labels: Record<string, string> } }>(
      DeviceType,
      "lbl-1",
    );
    assert.deepEqual(object?.metadata.labels, { [DEVICE_ID_LABEL]: "lbl-1", site: "shop" });

    const table = await fleet("get", "devices", "--target", "kube");
    assert.match(table.stdout, /^lbl-1 .*site=shop\s+site=vault$/m);
    await ok(["lbl-1", "--from-reported", "--overwrite"], "device lbl-1 labelled: site=vault\n");

    const missing = await label("lbl-none", "site=lab");
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /There is no Device lbl-none in the cluster/);
  },
);

// Last: it replaces the CRD with an older one.
Deno.test(
  "KubeDeploymentStore.apply() asks for strict field validation, and a CRD older than the CLI refuses the field it lacks by name",
  sharedServerTest,
  async () => {
    const client = await kube();
    const namespace = await createNamespace(client, "older");
    // A CRD from before `spec.rollout`: this CLI always writes it.
    const older = deploymentCrd();
    const schema = older.spec.versions[0]!.schema.openAPIV3Schema;
    delete schema.properties!.spec!.properties!.rollout;
    await client.apply(CrdType, older, { fieldManager: "fleet-installer", force: true });
    const store = new KubeDeploymentStore(client, silentLogger);
    const web = buildDeployment({
      name: "web",
      namespace,
      image: "localhost/web:1",
      ports: [],
      env: [],
      volumes: [],
      selectors: ["site=lab"],
    });
    const error = await eventually("the older CRD to be served", async () => {
      try {
        await store.apply(web);
        await client.delete(DeploymentType, "web", { namespace });
        return undefined;
      } catch (error) {
        return error;
      }
    });
    assert.ok(error instanceof DeploymentRefusedError, String(error));
    assert.equal(error.kind, "usage");
    assert.match(error.message, /\.spec\.rollout: field not declared in schema/);
    assert.equal(await client.get(DeploymentType, "web", namespace), undefined);
    // fleet apply asks for strict field validation, as kubectl does.
    const path = `/namespaces/${namespace}/deployments/web?`;
    const uris = await eventually("the audit log to show the apply", async () => {
      const found = await patchesTo(path);
      return found.length > 0 && found;
    });
    for (const uri of uris) assert.match(uri, /[?&]fieldValidation=Strict(&|$)/);
    client.close();
    const { server, dir } = await audited();
    await server[Symbol.asyncDispose]();
    await dir[Symbol.asyncDispose]();
  },
);
