// Against a real kube-apiserver + etcd, shared by the whole file (each test works in its own
// namespace); the last test stops it.
import assert from "node:assert/strict";
import { KubeClient } from "./client.ts";
import { KubeApiError, KubeGoneError, KubeUnavailableError } from "./errors.ts";
import { loadKubeConfig } from "./kubeconfig.ts";
import { ConfigMapType, type KubeObject } from "./types.ts";
import { OPERATOR_TEST_USER } from "../../testing/kube_apiserver.ts";
import { waitFor } from "../timers.ts";
import {
  createNamespace,
  disposeSharedKube,
  grantToOperatorTestUser,
  installWidgetCrd,
  sharedKube,
  sharedServerTest,
  type Widget,
  WIDGET_SIZE_RULE_MESSAGE,
  WidgetType,
} from "../../testing/kube.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

async function admin(): Promise<KubeClient> {
  return new KubeClient((await sharedKube()).adminConfig);
}

async function rejection(promise: Promise<unknown>): Promise<KubeApiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KubeApiError) return err;
    throw err;
  }
  assert.fail("expected a KubeApiError");
}

let crdInstalled: Promise<void> | undefined;
function widgets(client: KubeClient): Promise<void> {
  crdInstalled ??= installWidgetCrd(client);
  return crdInstalled;
}

Deno.test(
  "startKubeApiServer() serves /readyz to the admin and health() passes",
  sharedServerTest,
  async () => {
    const kube = await sharedKube();
    console.log(`kube-apiserver + etcd ready in ${kube.startupMs} ms`);
    assert.match(kube.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(kube.caCertPem, /BEGIN CERTIFICATE/);
    using client = await admin();
    await client.health();
  },
);

Deno.test("KubeClient.health() rejects a bad token with 401", sharedServerTest, async () => {
  const kube = await sharedKube();
  using client = new KubeClient({ ...kube.adminConfig, token: "not-a-token" });
  const err = await rejection(client.health());
  assert.ok(err.isUnauthorized(), err.message);
});

Deno.test(
  "KubeClient throws KubeUnavailableError naming the server for a closed port and for an unknown CA",
  sharedServerTest,
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    using closed = new KubeClient({ server: `https://127.0.0.1:${port}`, token: "x" });
    await assert.rejects(closed.get(ConfigMapType, "x", "default"), (err: unknown) => {
      assert.ok(err instanceof KubeUnavailableError);
      assert.match(err.message, new RegExp(`https://127\\.0\\.0\\.1:${port}`));
      assert.match(err.message, /refused/i);
      return true;
    });
    const kube = await sharedKube();
    using untrusted = new KubeClient({ server: kube.url, token: kube.token });
    await assert.rejects(untrusted.health(), (err: unknown) => {
      assert.ok(err instanceof KubeUnavailableError);
      assert.match(err.message, /certificate|issuer/i);
      return true;
    });
  },
);

Deno.test(
  "KubeClient refuses an empty name instead of deleting the whole collection",
  sharedServerTest,
  async () => {
    using client = await admin();
    const ns = await createNamespace(client, "noname");
    for (const name of ["one", "two"]) {
      await client.create(ConfigMapType, { metadata: { name, namespace: ns }, data: {} });
    }
    await assert.rejects(
      client.delete(ConfigMapType, "", { namespace: ns }),
      TypeError,
      `A ConfigMap needs a name: an empty one would address every ConfigMap in namespace ${ns}`,
    );
    await assert.rejects(client.get(ConfigMapType, "", ns), TypeError);
    const left = await client.list(ConfigMapType, { namespace: ns });
    assert.deepEqual(
      left.items.map((i) => i.metadata?.name).filter((n) => n !== "kube-root-ca.crt").sort(),
      ["one", "two"],
    );
  },
);

Deno.test(
  "KubeClient creates, gets, lists, replaces and deletes ConfigMaps",
  sharedServerTest,
  async () => {
    using client = await admin();
    const ns = await createNamespace(client, "crud");
    const created = await client.create<ConfigMap>(ConfigMapType, {
      metadata: { name: "one", namespace: ns, labels: { app: "demo" } },
      data: { greeting: "hello" },
    });
    assert.ok(created.metadata?.resourceVersion);
    await client.create(ConfigMapType, { metadata: { name: "two", namespace: ns }, data: {} });

    const got = await client.get<ConfigMap>(ConfigMapType, "one", ns);
    assert.equal(got?.data?.["greeting"], "hello");

    const all = await client.list<ConfigMap>(ConfigMapType, { namespace: ns });
    assert.deepEqual(all.items.map((i) => i.metadata?.name).sort(), ["one", "two"]);
    assert.ok(all.items.every((i) => i.apiVersion === "v1" && i.kind === "ConfigMap"));
    assert.match(all.resourceVersion, /^\d+$/);
    const labelled = await client.list<ConfigMap>(ConfigMapType, {
      namespace: ns,
      labelSelector: "app=demo",
    });
    assert.deepEqual(labelled.items.map((i) => i.metadata?.name), ["one"]);
    const byField = await client.list(ConfigMapType, {
      namespace: ns,
      fieldSelector: "metadata.name=two",
    });
    assert.deepEqual(byField.items.map((i) => i.metadata?.name), ["two"]);

    const replaced = await client.replace<ConfigMap>(ConfigMapType, {
      ...got,
      data: { greeting: "bonjour" },
    });
    assert.equal(replaced.data?.["greeting"], "bonjour");
    assert.notEqual(replaced.metadata?.resourceVersion, got?.metadata?.resourceVersion);
    // `got` carries the old resourceVersion: the PUT is refused.
    const stale = await rejection(client.replace(ConfigMapType, { ...got, data: { x: "y" } }));
    assert.ok(stale.isConflict(), stale.message);
    assert.match(stale.message, /^Kubernetes rejected ConfigMap crud-[^/]+\/one: /);

    const exists = await rejection(
      client.create(ConfigMapType, { metadata: { name: "one", namespace: ns } }),
    );
    assert.ok(exists.isConflict());
    assert.equal(exists.reason, "AlreadyExists");

    assert.equal(await client.delete(ConfigMapType, "one", { namespace: ns }), true);
    assert.equal(await client.delete(ConfigMapType, "one", { namespace: ns }), false);
    assert.equal(await client.get(ConfigMapType, "one", ns), undefined);
  },
);

Deno.test(
  "KubeClient reports a missing object as undefined, false or isNotFound()",
  sharedServerTest,
  async () => {
    using client = await admin();
    const ns = await createNamespace(client, "missing");
    assert.equal(await client.get(ConfigMapType, "nope", ns), undefined);
    assert.equal(await client.delete(ConfigMapType, "nope", { namespace: ns }), false);
    const err = await rejection(client.mergePatch(ConfigMapType, "nope", { data: { a: "b" } }, {
      namespace: ns,
    }));
    assert.ok(err.isNotFound());
    assert.equal(err.objectName, "nope");
    assert.equal(err.namespace, ns);
    assert.equal(err.kind, "ConfigMap");
    // An unknown type is not a missing object: it throws, so a missing CRD cannot pass unseen.
    const Unknown = { ...WidgetType, group: "nowhere.fleet.nationtech.io" };
    const unknown = await rejection(client.get(Unknown, "w", ns));
    assert.ok(unknown.isNotFound());
    assert.match(unknown.message, /does not serve widgets in nowhere.fleet.nationtech.io\/v1/);
    await assert.rejects(client.delete(Unknown, "w", { namespace: ns }), KubeApiError);
  },
);

Deno.test(
  "KubeClient installs a CRD with apply and does CRUD on its objects",
  sharedServerTest,
  async () => {
    using client = await admin();
    await widgets(client);
    const ns = await createNamespace(client, "widgets");
    const created = await client.create<Widget>(WidgetType, {
      metadata: { name: "w1", namespace: ns },
      spec: { size: 3, color: "red" },
    });
    assert.equal(created.apiVersion, "kubetest.fleet.nationtech.io/v1");
    assert.equal(created.metadata?.generation, 1);
    const got = await client.get<Widget>(WidgetType, "w1", ns);
    assert.equal(got?.spec?.color, "red");
    const listed = await client.list<Widget>(WidgetType, { namespace: ns });
    assert.deepEqual(listed.items.map((w) => w.metadata?.name), ["w1"]);
    const patched = await client.mergePatch<Widget>(WidgetType, "w1", { spec: { color: "blue" } }, {
      namespace: ns,
    });
    assert.equal(patched.spec?.color, "blue");
    assert.equal(patched.metadata?.generation, 2);
    const withStatus = await client.mergePatch<Widget>(
      WidgetType,
      "w1",
      { status: { phase: "Ready" } },
      { namespace: ns, subresource: "status" },
    );
    assert.equal(withStatus.status?.phase, "Ready");
    assert.equal(withStatus.metadata?.generation, 2, "a status write does not bump generation");
    assert.equal(await client.delete(WidgetType, "w1", { namespace: ns }), true);
    assert.equal(await client.get(WidgetType, "w1", ns), undefined);
  },
);

Deno.test(
  "KubeClient.apply() twice with the same field manager is a no-op",
  sharedServerTest,
  async () => {
    using client = await admin();
    await widgets(client);
    const ns = await createNamespace(client, "ssa");
    const widget = { metadata: { name: "w", namespace: ns }, spec: { size: 2, color: "green" } };
    const first = await client.apply<Widget>(WidgetType, widget, { fieldManager: "manager-a" });
    const second = await client.apply<Widget>(WidgetType, widget, { fieldManager: "manager-a" });
    assert.ok(first.metadata?.resourceVersion);
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion);
    // An object read back (with managedFields) can be applied as is.
    const roundTrip = await client.apply<Widget>(WidgetType, second, { fieldManager: "manager-a" });
    assert.equal(roundTrip.metadata?.resourceVersion, first.metadata?.resourceVersion);

    const dry = await client.apply<Widget>(WidgetType, { ...widget, spec: { size: 9 } }, {
      fieldManager: "manager-a",
      dryRun: true,
    });
    assert.equal(dry.spec?.size, 9);
    assert.equal(
      (await client.get<Widget>(WidgetType, "w", ns))?.spec?.size,
      2,
      "dry run persists nothing",
    );
  },
);

Deno.test(
  "KubeClient.apply() conflicts between field managers without force and takes over with force",
  sharedServerTest,
  async () => {
    using client = await admin();
    await widgets(client);
    const ns = await createNamespace(client, "ssa-conflict");
    await client.apply(WidgetType, {
      metadata: { name: "w", namespace: ns },
      spec: { size: 1, color: "red" },
    }, { fieldManager: "manager-a" });
    const theirs = { metadata: { name: "w", namespace: ns }, spec: { color: "blue" } };
    const err = await rejection(client.apply(WidgetType, theirs, { fieldManager: "manager-b" }));
    assert.ok(err.isConflict(), err.message);
    assert.match(err.message, /manager-a/);
    assert.match(err.message, /\.spec\.color/);

    const forced = await client.apply<Widget & { metadata: { managedFields?: unknown[] } }>(
      WidgetType,
      theirs,
      { fieldManager: "manager-b", force: true },
    );
    assert.equal(forced.spec?.color, "blue");
    assert.equal(forced.spec?.size, 1, "manager-a keeps the fields it alone owns");
    const owners = JSON.stringify(forced.metadata.managedFields);
    assert.match(owners, /"manager":"manager-b"/);
  },
);

Deno.test(
  "KubeClient.applyStatus() writes status only and never touches spec",
  sharedServerTest,
  async () => {
    using client = await admin();
    await widgets(client);
    const ns = await createNamespace(client, "ssa-status");
    const applied = await client.apply<Widget>(WidgetType, {
      metadata: { name: "w", namespace: ns },
      spec: { size: 4, color: "red" },
    }, { fieldManager: "owner" });
    const status = await client.applyStatus<Widget>(WidgetType, {
      metadata: { name: "w", namespace: ns },
      spec: { size: 7, color: "black" }, // ignored on the status subresource
      status: { phase: "Running", observedSize: 4 },
    }, { fieldManager: "status-writer" });
    assert.deepEqual(status.status, { phase: "Running", observedSize: 4 });
    assert.deepEqual(status.spec, { size: 4, color: "red" });
    assert.equal(status.metadata?.generation, applied.metadata?.generation);
    const again = await client.applyStatus<Widget>(WidgetType, {
      metadata: { name: "w", namespace: ns },
      status: { phase: "Running", observedSize: 4 },
    }, { fieldManager: "status-writer" });
    assert.equal(again.metadata?.resourceVersion, status.metadata?.resourceVersion);
  },
);

Deno.test(
  "KubeClient.mergePatch() with a stale resourceVersion fails with isConflict()",
  sharedServerTest,
  async () => {
    using client = await admin();
    const ns = await createNamespace(client, "patch");
    const cm = await client.create<ConfigMap>(ConfigMapType, {
      metadata: { name: "c", namespace: ns },
      data: { n: "1" },
    });
    const rv = cm.metadata?.resourceVersion;
    const ok = await client.mergePatch<ConfigMap>(ConfigMapType, "c", {
      metadata: { resourceVersion: rv },
      data: { n: "2" },
    }, { namespace: ns });
    assert.equal(ok.data?.["n"], "2");
    const err = await rejection(client.mergePatch(ConfigMapType, "c", {
      metadata: { resourceVersion: rv },
      data: { n: "3" },
    }, { namespace: ns }));
    assert.ok(err.isConflict(), err.message);
    assert.equal(err.reason, "Conflict");
    assert.match(err.message, /the object has been modified/);
  },
);

Deno.test(
  "KubeClient reports RBAC denials as isForbidden() with a readable message",
  sharedServerTest,
  async () => {
    const kube = await sharedKube();
    using client = await admin();
    using operator = new KubeClient(kube.operatorConfig);
    const ns = await createNamespace(client, "rbac");
    const err = await rejection(operator.list(ConfigMapType, { namespace: ns }));
    assert.ok(err.isForbidden());
    assert.equal(
      err.message,
      `Kubernetes rejected list of ConfigMap in namespace ${ns}: configmaps is forbidden: ` +
        `User "${OPERATOR_TEST_USER}" cannot list resource "configmaps" in API group "" in ` +
        `the namespace "${ns}"`,
    );
    // Granting a Role makes the same call work: the token is a real, restricted user.
    await grantToOperatorTestUser(client, ns, "read-configmaps", [
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
    ]);
    const { items } = await waitFor("the RoleBinding to take effect", async () => {
      try {
        return await operator.list(ConfigMapType, { namespace: ns });
      } catch (error) {
        if (error instanceof KubeApiError && error.isForbidden()) return undefined;
        throw error;
      }
    });
    assert.deepEqual(items, []);
    const write = await rejection(
      operator.create(ConfigMapType, { metadata: { name: "x", namespace: ns } }),
    );
    assert.ok(write.isForbidden());
  },
);

Deno.test(
  "KubeClient passes a CRD's x-kubernetes-validations message through verbatim",
  sharedServerTest,
  async () => {
    using client = await admin();
    await widgets(client);
    const ns = await createNamespace(client, "cel");
    const err = await rejection(client.apply(WidgetType, {
      metadata: { name: "too-big", namespace: ns },
      spec: { size: 11 },
    }, { fieldManager: "fleet-test" }));
    assert.ok(err.isInvalid(), err.message);
    assert.ok(err.message.includes(WIDGET_SIZE_RULE_MESSAGE), err.message);
    assert.match(err.message, new RegExp(`^Kubernetes rejected Widget ${ns}/too-big: `));
    assert.equal(err.reason, "Invalid");
    assert.ok(err.serverMessage.includes(WIDGET_SIZE_RULE_MESSAGE));
    assert.equal(await client.get(WidgetType, "too-big", ns), undefined);
  },
);

Deno.test(
  "KubeClient.watch() yields ADDED, MODIFIED and DELETED, and ends on abort",
  sharedServerTest,
  async () => {
    using client = await admin();
    const ns = await createNamespace(client, "watch");
    const { resourceVersion } = await client.list(ConfigMapType, { namespace: ns });
    const controller = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (
        const event of client.watch<ConfigMap>(ConfigMapType, {
          namespace: ns,
          resourceVersion,
          signal: controller.signal,
        })
      ) {
        if (event.type === "BOOKMARK") continue;
        seen.push(`${event.type} ${event.object.metadata?.name} ${event.object.data?.["v"] ?? ""}`);
        if (event.type === "DELETED") controller.abort();
      }
    })();
    await client.create(ConfigMapType, {
      metadata: { name: "w", namespace: ns },
      data: { v: "1" },
    });
    await client.mergePatch(ConfigMapType, "w", { data: { v: "2" } }, { namespace: ns });
    await client.delete(ConfigMapType, "w", { namespace: ns });
    await done;
    assert.deepEqual(seen, ["ADDED w 1", "MODIFIED w 2", "DELETED w 2"]);
  },
);

Deno.test(
  "KubeClient.watch() from a compacted resourceVersion throws KubeGoneError",
  sharedServerTest,
  async () => {
    const kube = await sharedKube();
    using client = await admin();
    const ns = await createNamespace(client, "gone");
    await client.create(ConfigMapType, { metadata: { name: "c", namespace: ns } });
    // The watch cache holds every event since the server started, so compacting etcd is not
    // enough: only a restarted server's cache starts at the current revision.
    await kube.compactEtcd();
    await kube.restart();
    const controller = new AbortController();
    await assert.rejects(
      (async () => {
        for await (
          const _ of client.watch(ConfigMapType, {
            namespace: ns,
            resourceVersion: "1",
            signal: controller.signal,
          })
        ) {
          // nothing is expected before the error
        }
      })(),
      (err: unknown) => {
        assert.ok(err instanceof KubeGoneError, String(err));
        assert.ok(err.isGone());
        assert.match(err.message, /too old resource version/);
        return true;
      },
    );
    controller.abort();
  },
);

Deno.test(
  "loadKubeConfig() reads the fixture's kubeconfig into a working client",
  sharedServerTest,
  async () => {
    const kube = await sharedKube();
    const config = await loadKubeConfig({ path: kube.kubeconfigPath });
    assert.equal(config.server, kube.url);
    assert.equal(config.token, kube.token);
    assert.equal(config.caCertPem, kube.caCertPem);
    assert.equal(config.namespace, "default");
    using client = new KubeClient(config);
    await client.health();
    const fromEnv = await loadKubeConfig({
      env: (name) =>
        name === "KUBECONFIG" ? `/nonexistent/config:${kube.kubeconfigPath}` : undefined,
    });
    assert.equal(fromEnv.server, kube.url);
  },
);

Deno.test("stop the shared API server", sharedServerTest, async () => {
  await disposeSharedKube();
});
