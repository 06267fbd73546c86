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
import { API_VERSION, buildDeployment } from "../core/mod.ts";
import { deploymentCrd } from "../crd/crds.ts";
import { installCrds } from "../operator/kube_install.ts";
import { CrdType, DeploymentType } from "../operator/kube_resources.ts";
import { eventually } from "../testing/eventually.ts";
import { tempDir } from "../testing/temp_dir.ts";
import {
  createNamespace,
  disposeSharedKube,
  sharedKube,
  sharedServerTest,
} from "../testing/kube.ts";
import { DeploymentRefusedError, KubeDeploymentStore } from "./kube_store.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

let installed: Promise<KubeClient> | undefined;

/** An admin client of the shared API server, with the CRDs installed once. */
function kube(): Promise<KubeClient> {
  installed ??= (async () => {
    const client = new KubeClient((await sharedKube()).adminConfig);
    await installCrds(client, silentLogger);
    return client;
  })();
  return installed;
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

/** Runs `fleet <args>` against the shared API server. */
async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args, "--kubeconfig", (await sharedKube()).kubeconfigPath],
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
        "spec.score.data.services.0.restartPolicyy: unknown field\n",
    );
    assert.equal(await client.get(DeploymentType, "web", namespace), undefined);
  },
);

// Last: it replaces the CRD with an older one.
Deno.test(
  "KubeDeploymentStore.apply() is refused, naming the field, by a CRD older than the CLI",
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
    client.close();
    await disposeSharedKube();
  },
);
