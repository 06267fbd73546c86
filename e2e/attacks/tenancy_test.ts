/**
 * Attacks on tenancy (issue 12, item 5), on a real nats-server and a real kube-apiserver: a
 * tenant with rights in namespace team-a (bound by an admin to site=a) writes deployments whose
 * selectors reach for team-b's devices (site=b) every way a selector can be written. None gets
 * a team-b device's desired-state key, and team-b's own deployment keeps its key.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type Aggregate,
  Buckets,
  type Deployment,
  DeploymentStatus,
  DEVICE_ID_LABEL,
  DEVICE_SELECTOR_ANNOTATION,
  type Labels,
  type LabelSelector,
  NAMESPACES_BUCKET,
  parseJsonWith,
  refKey,
} from "../../core/mod.ts";
import { silentLogger } from "../../adapters/logger.ts";
import { connectNats, ensureBucket, noCredentials, readBucket } from "../../adapters/nats/mod.ts";
import { KubeApiError, KubeClient, NamespaceType } from "../../adapters/kube/mod.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { KubeBindingStore } from "../../cli/namespaces.ts";
import { startKubeApiServer } from "../../testing/kube_apiserver.ts";
import { registerTestDevice, testDeviceInfo } from "../../testing/devices.ts";
import { eventually } from "../../testing/eventually.ts";
import { singleServiceDeployment } from "../../sandbox/deployments.ts";
import {
  createOperator,
  DeploymentType,
  DeviceType,
  installCrds,
  type OperatorSource,
} from "../../operator/mod.ts";
import { NAMESPACES_HISTORY } from "../../operator/nats_namespace_bindings.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const DEVICES: Record<string, Labels> = {
  "dev-a1": { site: "a" },
  "dev-b1": { site: "b" },
  "dev-b2": { site: "b", tier: "x" },
};
const TEAM_B_DEVICES = ["dev-b1", "dev-b2"];

/** What a tenant of team-a writes to reach team-b's devices. */
const ATTACKS: Record<string, LabelSelector> = {
  "site-b": { matchLabels: { site: "b" } },
  "site-a-or-b": { matchExpressions: [{ key: "site", operator: "In", values: ["a", "b"] }] },
  "site-exists": { matchExpressions: [{ key: "site", operator: "Exists" }] },
  "not-site-a": { matchExpressions: [{ key: "site", operator: "NotIn", values: ["a"] }] },
  "by-device-id": {
    matchExpressions: [{ key: DEVICE_ID_LABEL, operator: "In", values: ["dev-b1", "dev-a1"] }],
  },
};

function deployment(namespace: string, name: string, selector: LabelSelector): Deployment {
  return singleServiceDeployment({ name, namespace, image: "localhost/web:1", selector });
}

/** An empty selector, as stored by anything that does not check it (no targetAllBoundDevices). */
function emptySelector(namespace: string, name: string): Deployment {
  return deployment(namespace, name, {});
}

/** The desired-state keys by device: `<deviceId>` → `<namespace>.<deployment>` names. */
async function desiredByDevice(nc: NatsConnection): Promise<Map<string, string[]>> {
  const byDevice = new Map<string, string[]>();
  for (const key of (await readBucket(nc, Buckets.desiredState, silentLogger)).keys()) {
    const [deviceId = "", ...rest] = key.split(".");
    byDevice.set(deviceId, [...byDevice.get(deviceId) ?? [], rest.join(".")].sort());
  }
  return byDevice;
}

/**
 * What the attack must leave: no team-a key on a team-b device, team-b's own key on each of its
 * devices, and team-a's legitimate reach (site-exists, all-bound) on its own device.
 */
function assertContained(byDevice: Map<string, string[]>, teamA: string, teamB: string): void {
  for (const deviceId of TEAM_B_DEVICES) {
    assert.deepEqual(byDevice.get(deviceId), [`${teamB}.web`], `${deviceId} holds only team-b's`);
  }
  const onA = byDevice.get("dev-a1") ?? [];
  assert.ok(onA.every((key) => key.startsWith(`${teamA}.`)), onA.join(", "));
  for (const name of ["site-a-or-b", "site-exists", "by-device-id", "all-bound"]) {
    assert.ok(onA.includes(`${teamA}.${name}`), `${teamA}/${name} reaches its own device`);
  }
}

/** A connection of the test's own (no credentials: the servers here have no auth). */
function connect(url: string): Promise<NatsConnection> {
  return connectNats({
    servers: [url],
    credentials: noCredentials(),
    name: "tenancy-attack",
    logger: silentLogger,
  });
}

/** Runs an operator (unbound namespaces target nothing, as shipped) until the returned stop. */
async function runOperator(
  nc: NatsConnection,
  source?: OperatorSource,
): Promise<() => Promise<void>> {
  const operator = createOperator({
    nc,
    log: silentLogger,
    replicas: 1,
    flushIntervalMs: 100,
    ...(source ? { source } : {}),
  });
  const abort = new AbortController();
  const running = operator.run(abort.signal);
  await operator.ready;
  return async () => {
    abort.abort();
    await running;
  };
}

Deno.test({
  name: "attack (nats source): no selector of a team-a deployment reaches a team-b device",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using ns = await startNatsServer();
    const nc = await connect(ns.url);
    const stops: (() => Promise<void>)[] = [];
    try {
      // The admin's part: the bindings.
      const bindings = await ensureBucket(nc, NAMESPACES_BUCKET, {
        replicas: 1,
        history: NAMESPACES_HISTORY,
      });
      await bindings.put("team-a", JSON.stringify({ deviceSelector: "site=a" }));
      await bindings.put("team-b", JSON.stringify({ deviceSelector: "site=b" }));
      for (const [deviceId, labels] of Object.entries(DEVICES)) {
        const device = await registerTestDevice(nc, testDeviceInfo(deviceId, labels));
        stops.push(() => Promise.resolve(device[Symbol.dispose]()));
        await setRegisteredLabels(nc, deviceId, labels);
      }
      stops.unshift(await runOperator(nc));

      // team-b's own deployment, then the tenant of team-a, writing to the deployments bucket.
      const store = await ensureBucket(nc, Buckets.deployments, { replicas: 1, history: 5 });
      const put = (d: Deployment) =>
        store.put(
          refKey(d.metadata),
          JSON.stringify({ ...d, metadata: { ...d.metadata, generation: 1 } }),
        );
      await put(deployment("team-b", "web", { matchLabels: { site: "b" } }));
      for (const [name, selector] of Object.entries(ATTACKS)) {
        await put(deployment("team-a", name, selector));
      }
      await put(emptySelector("team-a", "empty"));
      await put({
        ...emptySelector("team-a", "all-bound"),
        spec: { ...emptySelector("team-a", "all-bound").spec, targetAllBoundDevices: true },
      });
      // And a namespace no admin bound.
      await put(deployment("team-c", "site-b", { matchLabels: { site: "b" } }));

      // Each deployment's status, once it says what is expected (a status may come first that
      // was computed before the deployment's targets were).
      const status = (key: string, expected: (a: Aggregate) => boolean) =>
        eventually(`the status of ${key}`, async () => {
          const value = (await readBucket(nc, Buckets.deploymentStatus, silentLogger)).get(key);
          const aggregate = value && parseJsonWith(DeploymentStatus, value, key).aggregate;
          return aggregate && expected(aggregate) ? aggregate : undefined;
        });
      await status("team-a.empty", (a) =>
        a.matchedDeviceCount === 0 &&
        /targetSelector is empty, so it targets no device; .*targetAllBoundDevices: true/.test(
          a.targetingProblem ?? "",
        ));
      await status("team-c.site-b", (a) =>
        a.targetingProblem?.startsWith(
          "namespace team-c is bound to no devices; an admin binds it with fleet namespace bind " +
            "team-c",
        ) === true);
      await status("team-b.web", (a) => a.matchedDeviceCount === 2);
      for (const name of Object.keys(ATTACKS)) {
        await status(`team-a.${name}`, (a) => a.matchedDeviceCount <= 1);
      }
      const byDevice = await eventually("team-a's deployments on dev-a1", async () => {
        const now = await desiredByDevice(nc);
        return (now.get("dev-a1")?.length ?? 0) >= 4 ? now : undefined;
      });
      assertContained(byDevice, "team-a", "team-b");

      // fleet apply refuses an empty selector before anything is stored.
      const file = join(await Deno.makeTempDir(), "empty.yaml");
      await Deno.writeTextFile(file, JSON.stringify(emptySelector("team-a", "empty2")));
      const applied = await fleet(["apply", "-f", file, "--nats-url", ns.url]);
      assert.equal(applied.code, 2, applied.stderr);
      assert.match(applied.stderr, /spec\.targetSelector is empty/);

      // An admin widens team-a's binding to site b: now (and only now) its deployments get there.
      await bindings.put("team-a", JSON.stringify({ deviceSelector: "site in (a,b)" }));
      await eventually(
        "team-a/site-b on dev-b1",
        async () => (await desiredByDevice(nc)).get("dev-b1")?.includes("team-a.site-b"),
      );
      // And narrows it back: the keys it gained go again; team-b's stay.
      await bindings.put("team-a", JSON.stringify({ deviceSelector: "site=a" }));
      const after = await eventually("team-a's keys gone from team-b's devices", async () => {
        const now = await desiredByDevice(nc);
        return TEAM_B_DEVICES.every((id) => now.get(id)?.length === 1) ? now : undefined;
      });
      assertContained(after, "team-a", "team-b");
    } finally {
      for (const stop of stops) await stop();
      await nc.close();
    }
  },
});

Deno.test({
  name: "attack (kube source): no selector of a team-a Deployment reaches a team-b device",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using kube = await startKubeApiServer();
    using client = new KubeClient(kube.adminConfig);
    await installCrds(client, silentLogger);
    await using ns = await startNatsServer();
    const nc = await connect(ns.url);
    const stops: (() => Promise<void>)[] = [];
    try {
      // The cluster admin's part: namespaces and their bindings (as fleet namespace bind does).
      for (const name of ["team-a", "team-b", "team-c"]) {
        await client.create(NamespaceType, { metadata: { name } });
      }
      const admin = new KubeBindingStore(client);
      await admin.bind("team-a", "site=a");
      await admin.bind("team-b", "site=b");
      assert.deepEqual(
        (await admin.list()).filter((row) => row.namespace.startsWith("team-")),
        [
          { namespace: "team-a", binding: "site=a" },
          { namespace: "team-b", binding: "site=b" },
          { namespace: "team-c", binding: undefined },
        ],
      );
      const annotations = async (name: string) =>
        (await client.get<{ metadata: { annotations?: Record<string, string> } }>(
          NamespaceType,
          name,
        ))?.metadata.annotations;
      assert.equal((await annotations("team-a"))?.[DEVICE_SELECTOR_ANNOTATION], "site=a");
      for (const [deviceId, labels] of Object.entries(DEVICES)) {
        const device = await registerTestDevice(nc, testDeviceInfo(deviceId, labels));
        stops.push(() => Promise.resolve(device[Symbol.dispose]()));
      }
      stops.unshift(await runOperator(nc, { kind: "kube", client }));
      // The labels targeting reads are the Device objects' (an admin's, as with kubectl label).
      for (const [deviceId, labels] of Object.entries(DEVICES)) {
        await eventually(`Device ${deviceId}`, () => client.get(DeviceType, deviceId));
        await client.mergePatch(DeviceType, deviceId, { metadata: { labels } });
      }

      const create = (d: Deployment) => client.create(DeploymentType, d);
      await create(deployment("team-b", "web", { matchLabels: { site: "b" } }));
      for (const [name, selector] of Object.entries(ATTACKS)) {
        await create(deployment("team-a", name, selector));
      }
      await create({
        ...emptySelector("team-a", "all-bound"),
        spec: { ...emptySelector("team-a", "all-bound").spec, targetAllBoundDevices: true },
      });
      await create(deployment("team-c", "site-b", { matchLabels: { site: "b" } }));
      // The API server refuses an empty selector (CEL), with the rule in words.
      const refused = await create(emptySelector("team-a", "empty")).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof KubeApiError, String(refused));
      assert.match(refused.message, /spec\.targetSelector is empty/);

      const status = (namespace: string, name: string, expected: (a: Aggregate) => boolean) =>
        eventually(`the status of ${namespace}/${name}`, async () => {
          const cr = await client.get<
            { status?: { observedGeneration?: number; aggregate?: Aggregate } }
          >(DeploymentType, name, namespace);
          const aggregate = cr?.status?.observedGeneration === 1 ? cr.status.aggregate : undefined;
          return aggregate && expected(aggregate) ? aggregate : undefined;
        });
      for (const name of [...Object.keys(ATTACKS), "all-bound"]) {
        await status("team-a", name, (a) => a.matchedDeviceCount <= 1);
      }
      await status("team-b", "web", (a) => a.matchedDeviceCount === 2);
      await status(
        "team-c",
        "site-b",
        (a) => a.targetingProblem?.startsWith("namespace team-c is bound to no devices") === true,
      );
      const byDevice = await eventually("team-a's deployments on dev-a1", async () => {
        const now = await desiredByDevice(nc);
        return (now.get("dev-a1")?.length ?? 0) >= 4 ? now : undefined;
      });
      assertContained(byDevice, "team-a", "team-b");

      // The admin unbinds team-a: its deployments leave every device; team-b's stay.
      assert.equal(await admin.unbind("team-a"), true);
      assert.equal((await annotations("team-a"))?.[DEVICE_SELECTOR_ANNOTATION], undefined);
      const after = await eventually("team-a's keys gone", async () => {
        const now = await desiredByDevice(nc);
        return now.get("dev-a1") === undefined ? now : undefined;
      });
      for (const deviceId of TEAM_B_DEVICES) {
        assert.deepEqual(after.get(deviceId), ["team-b.web"]);
      }
      await status(
        "team-a",
        "site-exists",
        (a) => a.targetingProblem?.startsWith("namespace team-a is bound to no devices") === true,
      );
    } finally {
      for (const stop of stops) await stop();
      await nc.close();
    }
  },
});

/**
 * The control plane's label registry entry, where targeting labels come from once devices no
 * longer speak for themselves (issue 12, item 3); the same labels as the device reports.
 */
async function setRegisteredLabels(nc: NatsConnection, deviceId: string, labels: Labels) {
  const registry = await ensureBucket(nc, "device-labels", { replicas: 1, history: 3 });
  await registry.put(`labels.${deviceId}`, JSON.stringify({ labels }));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `fleet <args>` as a person would, with no FLEET_* settings of this process. */
async function fleet(args: string[]): Promise<Run> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
