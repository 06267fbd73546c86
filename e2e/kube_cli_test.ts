/** The CLI against a real kube-apiserver: install, apply --target kube, get, delete. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { DeploymentType } from "../operator/mod.ts";
import { stopOnDeadline, story } from "./_story.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

story("fleet operator install, apply/get/delete --target kube", async () => {
  await using kube = stopOnDeadline(await startKubeApiServer());
  using client = new KubeClient(kube.adminConfig);
  const k = ["--kubeconfig", kube.kubeconfigPath];

  const installed = await fleet("operator", "install", ...k);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(
    installed.stdout,
    /customresourcedefinition deployments\.fleet\.nationtech\.io established/,
  );
  assert.match(
    installed.stdout,
    /customresourcedefinition devices\.fleet\.nationtech\.io established/,
  );
  assert.equal((await fleet("operator", "install", ...k)).code, 0, "install is idempotent");

  const flags = ["--name", "web", "-n", "edge", "--image", "localhost/web:1", "--port", "8080:80"];
  const applyFlags = [...flags, "--selector", "site=lab,tier in (edge,core)", "--restart", "no"];
  const created = await fleet("apply", "deployment", ...applyFlags, "--target", "kube", ...k);
  assert.equal(created.code, 1, "namespace edge does not exist yet");
  assert.match(created.stderr, /namespaces "edge" not found/);
  assert.equal(created.stderr.trim().split("\n").length, 1, "one readable line");
  await client.create({
    group: "",
    version: "v1",
    plural: "namespaces",
    kind: "Namespace",
    namespaced: false,
  }, {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: "edge" },
  });
  const ok = await fleet("apply", "deployment", ...applyFlags, "--target", "kube", ...k);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /deployment edge\/web created \(generation 1\)/);
  const again = await fleet("apply", "deployment", ...applyFlags, "--target", "kube", ...k);
  assert.match(again.stdout, /unchanged \(generation 1\)/);

  // --print emits the object as kubectl would send it; the API server takes it as it is.
  const printed = await fleet(
    "apply",
    "deployment",
    ...applyFlags,
    "--image",
    "localhost/web:2",
    "--print",
  );
  assert.equal(printed.code, 0, printed.stderr);
  const object = YAML.parse(printed.stdout);
  const applied = await client.apply<{ metadata: { generation: number } }>(DeploymentType, object, {
    fieldManager: "kubectl-client-side-apply",
    force: true,
  });
  assert.equal(applied.metadata.generation, 2);

  const table = await fleet("get", "deployments", "--target", "kube", ...k);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^NAMESPACE\s+NAME\s+GEN\s+MATCHED/m);
  assert.match(table.stdout, /^edge\s+web\s+2\*/m);
  const json = JSON.parse(
    (await fleet("get", "deployments", "--target", "kube", "-o", "json", ...k)).stdout,
  );
  assert.equal(json.items[0].spec.score.data.services[0].image, "localhost/web:2");
  assert.equal(
    (await fleet("get", "devices", "--target", "kube", ...k)).stdout.trim(),
    "No devices.",
  );

  const deleted = await fleet(
    "delete",
    "deployment",
    "web",
    "-n",
    "edge",
    "--target",
    "kube",
    ...k,
  );
  assert.equal(deleted.code, 0, deleted.stderr);
  const missing = await fleet(
    "delete",
    "deployment",
    "web",
    "-n",
    "edge",
    "--target",
    "kube",
    ...k,
  );
  assert.equal(missing.code, 1);
});
