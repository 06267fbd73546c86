import assert from "node:assert/strict";
import { silentLogger } from "../logger.ts";
import { startKubeApiServer } from "../../testing/kube_apiserver.ts";
import { KubeClient } from "./client.ts";
import { KubeApiError } from "./errors.ts";
import { informer, type InformerEvent, objectKey, relistChanges } from "./informer.ts";
import { ConfigMapType, type KubeObject } from "./types.ts";
import { captureLogger, createNamespace } from "../../testing/kube.ts";
import { eventually } from "../../testing/eventually.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** `upsert a v=1`, `delete b v=2`, `ready`, `ready restarted`: easy to compare. */
function show(event: InformerEvent<ConfigMap>): string {
  if (event.type === "ready") return event.restarted ? "ready restarted" : "ready";
  return `${event.type} ${event.object.metadata?.name} v=${event.object.data?.["v"] ?? ""}`;
}

/** Runs an informer in the background, keeping what it yields. */
function collect(
  client: KubeClient,
  namespace: string,
  logger = silentLogger,
): { events: string[]; stop(): Promise<unknown> } {
  const controller = new AbortController();
  const events: string[] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (
        const event of informer<ConfigMap>(client, ConfigMapType, {
          namespace,
          signal: controller.signal,
          logger,
        })
      ) {
        events.push(show(event));
      }
    } catch (err) {
      error = err;
    }
  })();
  return {
    events,
    async stop() {
      controller.abort();
      await done;
      return error;
    },
  };
}

function cm(name: string, namespace: string, v: string): ConfigMap {
  return { metadata: { name, namespace }, data: { v } };
}

function put(client: KubeClient, name: string, namespace: string, v: string): Promise<unknown> {
  return client.apply(ConfigMapType, cm(name, namespace, v), { fieldManager: "fleet-test" });
}

Deno.test("informer() lists, says ready, then follows adds, changes and deletes", async () => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  const ns = await createNamespace(client, "informer");
  await put(client, "a", ns, "1");
  await put(client, "b", ns, "1");
  const run = collect(client, ns);
  await eventually("the initial list", () => run.events.includes("ready"));
  assert.deepEqual(run.events.slice().sort(), ["ready", "upsert a v=1", "upsert b v=1"]);
  assert.equal(run.events.at(-1), "ready");

  await put(client, "c", ns, "1");
  await put(client, "a", ns, "2");
  await put(client, "a", ns, "2"); // a no-op apply: no event
  await client.delete(ConfigMapType, "b", { namespace: ns });
  await eventually("the live changes", () => run.events.length >= 6);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(run.events.slice(3), ["upsert c v=1", "upsert a v=2", "delete b v=1"]);
  assert.equal(await run.stop(), undefined, "ends without an error when aborted");
});

for (const kill of [false, true]) {
  const how = kill ? "a crash (SIGKILL)" : "a graceful restart";
  Deno.test(`informer() carries on after ${how} of the API server, nothing lost or duplicated`, async () => {
    await using kube = await startKubeApiServer();
    using client = new KubeClient(kube.adminConfig);
    const ns = await createNamespace(client, "restart");
    await put(client, "a", ns, "1");
    await put(client, "b", ns, "1");
    const { logger, lines } = captureLogger();
    const run = collect(client, ns, logger);
    await eventually("the initial list", () => run.events.includes("ready"));
    await put(client, "c", ns, "1");
    await eventually("c", () => run.events.includes("upsert c v=1"));

    const restartStarted = performance.now();
    await kube.restart({ kill });
    const restartMs = Math.round(performance.now() - restartStarted);
    await put(client, "a", ns, "2");
    await client.delete(ConfigMapType, "b", { namespace: ns });
    await put(client, "d", ns, "1");
    const recoveryStarted = performance.now();
    await eventually(
      "the changes made after the restart",
      () => ["upsert a v=2", "delete b v=1", "upsert d v=1"].every((e) => run.events.includes(e)),
      30_000,
    );
    const recoveryMs = Math.round(performance.now() - recoveryStarted);
    await new Promise((resolve) => setTimeout(resolve, 500));
    console.log(
      `restart ${restartMs} ms, changes seen ${recoveryMs} ms after; ${run.events.join(", ")}`,
    );
    console.log(lines.join("\n"));

    const changes = run.events.filter((e) => !e.startsWith("ready"));
    assert.equal(new Set(changes).size, changes.length, `duplicates in ${changes.join(", ")}`);
    assert.deepEqual(
      changes.slice().sort(),
      [
        "delete b v=1",
        "upsert a v=1",
        "upsert a v=2",
        "upsert b v=1",
        "upsert c v=1",
        "upsert d v=1",
      ],
    );
    // The changes after the restart come after everything before it.
    assert.deepEqual(changes.slice(0, 3).sort(), ["upsert a v=1", "upsert b v=1", "upsert c v=1"]);
    // An outage the informer saw is logged once when it starts and once when it ends. A
    // restarted server may be back before the informer's next watch, which then gets
    // 410 Gone (the new server keeps no history) and relists without seeing an outage.
    const count = (text: string) => lines.filter((l) => l.includes(text)).length;
    const outage = [count("Cannot watch"), count("again after")];
    const relisted = count("410 Gone") === 1;
    assert.ok(
      (outage[0] === 1 && outage[1] === 1) || (outage[0] === 0 && outage[1] === 0 && relisted),
      lines.join("\n"),
    );

    await put(client, "e", ns, "1");
    await eventually("a change after recovery", () => run.events.includes("upsert e v=1"));
    assert.equal(await run.stop(), undefined);
  });
}

Deno.test("informer() relists after 410 Gone and yields only the difference", async () => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  const ns = await createNamespace(client, "gone");
  await put(client, "a", ns, "1");
  await put(client, "b", ns, "1");
  await put(client, "c", ns, "1");
  const controller = new AbortController();
  const { logger, lines } = captureLogger();
  const events = informer<ConfigMap>(client, ConfigMapType, {
    namespace: ns,
    signal: controller.signal,
    logger,
  })[Symbol.asyncIterator]();
  const next = async () => {
    const result = await events.next();
    assert.ok(!result.done);
    return show(result.value);
  };
  const initial = [await next(), await next(), await next(), await next()];
  assert.deepEqual(initial, ["upsert a v=1", "upsert b v=1", "upsert c v=1", "ready"]);

  // The informer waits at its `yield` and has not opened its watch yet. Change things, then
  // make the list's resourceVersion unservable: compacted in etcd, and older than the
  // watch cache of a restarted server (which starts at the current revision).
  await put(client, "b", ns, "2");
  await client.delete(ConfigMapType, "c", { namespace: ns });
  await put(client, "d", ns, "1");
  await kube.compactEtcd();
  await kube.restart();

  const afterGone = [await next(), await next(), await next(), await next()];
  assert.deepEqual(afterGone, ["upsert b v=2", "upsert d v=1", "delete c v=1", "ready restarted"]);
  assert.ok(lines.some((l) => l.includes("410 Gone")), lines.join("\n"));

  // And it keeps watching from the relist.
  await put(client, "a", ns, "2");
  assert.equal(await next(), "upsert a v=2");
  controller.abort();
  assert.ok((await events.next()).done);
});

Deno.test("informer() throws a forbidden first list instead of retrying forever", async () => {
  await using kube = await startKubeApiServer();
  using admin = new KubeClient(kube.adminConfig);
  using operator = new KubeClient(kube.operatorConfig);
  const ns = await createNamespace(admin, "forbidden");
  const run = informer(operator, ConfigMapType, {
    namespace: ns,
    signal: new AbortController().signal,
    logger: silentLogger,
  });
  await assert.rejects(
    async () => {
      for await (const _ of run) assert.fail("no event expected");
    },
    (err: unknown) => err instanceof KubeApiError && err.isForbidden(),
  );
});

Deno.test("relistChanges() yields upserts for new and changed objects and deletes for vanished ones", () => {
  const obj = (name: string, rv: string): ConfigMap => ({
    metadata: { name, namespace: "ns", resourceVersion: rv },
  });
  const previous = new Map([obj("same", "1"), obj("changed", "2"), obj("gone", "3")].map((
    o,
  ) => [objectKey(o), o]));
  const { changes, next } = relistChanges(previous, [
    obj("same", "1"),
    obj("changed", "5"),
    obj("new", "6"),
  ]);
  assert.deepEqual(
    changes.map((c) =>
      `${c.type} ${c.object.metadata?.name} ${c.object.metadata?.resourceVersion}`
    ),
    ["upsert changed 5", "upsert new 6", "delete gone 3"],
  );
  assert.deepEqual([...next.keys()], ["ns/same", "ns/changed", "ns/new"]);
  assert.deepEqual(relistChanges(next, [...next.values()]).changes, []);
});
