import assert from "node:assert/strict";
import { join } from "node:path";
import { KubeConfigError } from "./errors.ts";
import { loadKubeConfig } from "./kubeconfig.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

function kubeconfig(extra: { user?: Record<string, unknown>; current?: string } = {}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "lab",
        cluster: { server: "https://10.0.0.5:6443/", "certificate-authority-data": btoa(CA) },
      },
      { name: "shop", cluster: { server: "https://shop:6443", "certificate-authority": "ca.pem" } },
    ],
    users: [
      { name: "admin", user: extra.user ?? { token: "secret" } },
      { name: "reader", user: { tokenFile: "token.txt" } },
    ],
    contexts: [
      { name: "lab", context: { cluster: "lab", user: "admin", namespace: "fleet" } },
      { name: "shop", context: { cluster: "shop", user: "reader" } },
    ],
    "current-context": extra.current ?? "lab",
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-kubeconfig-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function configError(promise: Promise<unknown>): Promise<KubeConfigError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KubeConfigError) return err;
    throw err;
  }
  assert.fail("expected a KubeConfigError");
}

const noEnv = () => undefined;

Deno.test("loadKubeConfig() reads the current context: server, token, inline CA, namespace", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "config");
    await Deno.writeTextFile(path, kubeconfig());
    const config = await loadKubeConfig({ path, env: noEnv });
    assert.deepEqual(config, {
      server: "https://10.0.0.5:6443",
      token: "secret",
      caCertPem: CA,
      namespace: "fleet",
      source: path,
    });
  });
});

Deno.test("loadKubeConfig() resolves CA and token files relative to the kubeconfig", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "config"), kubeconfig());
    await Deno.writeTextFile(join(dir, "ca.pem"), CA);
    await Deno.writeTextFile(join(dir, "token.txt"), "file-token\n");
    const config = await loadKubeConfig({
      context: "shop",
      env: (name) => name === "KUBECONFIG" ? join(dir, "config") : undefined,
    });
    assert.equal(config.server, "https://shop:6443");
    assert.equal(config.caCertPem, CA);
    assert.equal(config.token, "file-token");
    assert.equal(config.tokenFile, join(dir, "token.txt"));
    assert.equal(config.namespace, undefined);
  });
});

Deno.test("loadKubeConfig() falls back to ~/.kube/config, then to the in-cluster service account", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "home", ".kube"), { recursive: true });
    await Deno.writeTextFile(join(dir, "home", ".kube", "config"), kubeconfig());
    const fromHome = await loadKubeConfig({
      env: (n) => n === "HOME" ? join(dir, "home") : undefined,
    });
    assert.equal(fromHome.server, "https://10.0.0.5:6443");

    const sa = join(dir, "sa");
    await Deno.mkdir(sa);
    await Deno.writeTextFile(join(sa, "token"), "pod-token\n");
    await Deno.writeTextFile(join(sa, "ca.crt"), CA);
    await Deno.writeTextFile(join(sa, "namespace"), "fleet-system");
    const env: Record<string, string> = {
      HOME: join(dir, "nobody"),
      KUBERNETES_SERVICE_HOST: "fd00::1",
      KUBERNETES_SERVICE_PORT: "443",
    };
    const inCluster = await loadKubeConfig({ env: (n) => env[n], serviceAccountDir: sa });
    assert.deepEqual(inCluster, {
      server: "https://[fd00::1]:443",
      token: "pod-token",
      tokenFile: join(sa, "token"),
      caCertPem: CA,
      namespace: "fleet-system",
      source: sa,
    });
  });
});

Deno.test("loadKubeConfig() names the file and the problem when it cannot help", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "config");
    const missing = await configError(loadKubeConfig({ path, env: noEnv }));
    assert.equal(
      missing.message,
      `Cannot use the Kubernetes configuration ${path}: the file does not exist`,
    );

    await Deno.writeTextFile(path, kubeconfig());
    const context = await configError(loadKubeConfig({ path, context: "prod", env: noEnv }));
    assert.match(context.message, /context "prod" does not exist \(available: lab, shop\)/);

    await Deno.writeTextFile(path, kubeconfig({ user: { exec: { command: "aws" } } }));
    const exec = await configError(loadKubeConfig({ path, env: noEnv }));
    assert.match(exec.message, /exec credential plugin \(aws\), which Fleet does not support/);
    assert.equal(exec.source, path);

    await Deno.writeTextFile(path, "clusters: [unclosed");
    assert.match(
      (await configError(loadKubeConfig({ path, env: noEnv }))).message,
      /not valid YAML/,
    );

    const nothing = await configError(loadKubeConfig({ env: noEnv }));
    assert.match(nothing.message, /no kubeconfig found/);
  });
});
