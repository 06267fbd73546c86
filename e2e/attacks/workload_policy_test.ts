/**
 * Attacks from a workload on the device that runs it (issue 12, item 4): a real agent on a
 * real nats-server and podman is sent deployments that mount the agent's key, config, state
 * directory, podman socket or `/`, ask for privileged mode or the host network, or come from
 * a registry the device does not trust. Each must be refused `Failed` naming the rule, with
 * no container created, while another deployment on the device keeps running untouched; a
 * container an agent from before the policy left with the key mounted is removed.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import {
  Buckets,
  ContainerLabels,
  containerLabels,
  containerName,
  DeploymentState,
  keys,
  parseJsonWith,
  PodmanService,
} from "../../core/mod.ts";
import { connectNats, ensureBucket, noCredentials } from "../../adapters/nats/mod.ts";
import { silentLogger } from "../../adapters/logger.ts";
import { systemClock } from "../../adapters/clock.ts";
import { PodmanClient } from "../../adapters/podman/mod.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { startPodmanService } from "../../sandbox/podman_service.ts";
import { ensureTestImage } from "../../sandbox/local_image.ts";
import { Agent, AgentConfig, PodmanRuntime } from "../../agent/mod.ts";
import { eventually } from "../../testing/eventually.ts";
import { keepDeviceConsumers } from "../../testing/agents.ts";

const NAMESPACE = "default";
const TIMEOUT_MS = 60_000;

function desired(name: string, generation: number, service: Record<string, unknown>): string {
  return JSON.stringify({
    namespace: NAMESPACE,
    name,
    generation,
    score: { type: "PodmanV0", data: { services: [{ name: "app", ...service }] } },
  });
}

/** What the control plane sees of a deployment on the device. */
async function stateOf(
  bucket: KV,
  deviceId: string,
  name: string,
): Promise<DeploymentState | undefined> {
  const entry = await bucket.get(keys.deviceState(deviceId, { namespace: NAMESPACE, name }));
  if (!entry || entry.operation !== "PUT") return undefined;
  return parseJsonWith(DeploymentState, entry.string(), "deployment state");
}

/** Libpod's inspect of a container, for the limits podman applied. */
async function inspectRaw(socketPath: string, id: string): Promise<Record<string, unknown>> {
  using http = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  const response = await fetch(`http://podman/v4.0.0/libpod/containers/${id}/json`, {
    client: http,
  });
  assert.equal(response.status, 200);
  return await response.json();
}

Deno.test("A workload cannot mount the agent's identity, state or podman socket, run privileged or on the host network, or come from an untrusted registry; a neighbour keeps running", async () => {
  await using ns = await startNatsServer();
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, "v1");
  const nc: NatsConnection = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "workload-policy-attack",
    logger: silentLogger,
  });
  const bucket = (name: string) => ensureBucket(nc, name, { replicas: 1, history: 1 });
  const desiredKv = await bucket(Buckets.desiredState);
  const states = await bucket(Buckets.deviceState);
  await bucket(Buckets.deviceInfo);
  await bucket(Buckets.deviceHeartbeat);

  const deviceId = `victim-${crypto.randomUUID().slice(0, 6)}`;
  const root = await Deno.makeTempDir({ prefix: "fleet-workload-policy-" });
  const configDir = `${root}/etc`;
  const stateDir = `${root}/state`;
  const allowed = `${root}/srv`;
  await Deno.mkdir(configDir);
  await Deno.mkdir(allowed);
  const keyFile = `${configDir}/key.json`;
  await Deno.writeTextFile(keyFile, '{"kty":"OKP","d":"secret"}');
  await Deno.writeTextFile(`${allowed}/page.html`, "allowed\n");
  // Inside the allowed prefix, a link that leads to the agent's config directory.
  await Deno.symlink(configDir, `${allowed}/innocent`);

  const config = AgentConfig.parse({
    device_id: deviceId,
    state_dir: stateDir,
    nats: {
      urls: [ns.url],
      credentials: { type: "oidc", issuer: "https://idp.example.com", key_file: keyFile },
    },
    podman: { socket: svc.socketPath },
    intervals: {
      heartbeat_seconds: 5,
      relist_seconds: 1,
      republish_seconds: 300,
      orphan_grace_seconds: 60,
      stop_timeout_seconds: 2,
      min_ready_seconds: 0,
    },
    policy: { host_paths: [{ prefix: allowed, writable: true }], registries: ["localhost"] },
  });
  // What an agent from before the policy left running: a container with the key mounted.
  const legacyRef = { namespace: NAMESPACE, name: "legacy" };
  const legacyService = PodmanService.parse({
    name: "app",
    image,
    volumes: [{ hostPath: keyFile, containerPath: "/k", readOnly: true }],
  });
  const legacyId = await client.createContainer({
    name: containerName(deviceId, legacyRef, "app"),
    image,
    labels: containerLabels(deviceId, legacyRef, 1, legacyService),
    env: {},
    ports: [],
    volumes: legacyService.volumes,
    restartPolicy: "unless-stopped",
  });
  await client.startContainer(legacyId);
  await desiredKv.put(
    keys.desiredState(deviceId, legacyRef),
    desired("legacy", 1, {
      image,
      volumes: [{ hostPath: keyFile, containerPath: "/k", readOnly: true }],
    }),
  );

  // What the operator prepares: the consumer the agent reads its desired state from.
  await using _consumers = await keepDeviceConsumers(nc, [deviceId]);
  const agent = new Agent({
    config,
    credentials: noCredentials(),
    configPath: `${configDir}/config.toml`,
    runtime: new PodmanRuntime(client),
    log: silentLogger,
    version: "0.0.0-test",
    runtimeDescription: "podman (attack test)",
    clock: systemClock,
  });
  const controller = new AbortController();
  const running = agent.run(controller.signal);

  const containersOf = (name: string) =>
    client.listContainers({
      [ContainerLabels.deviceId]: deviceId,
      [ContainerLabels.deployment]: name,
    });
  const waitForPhase = (name: string, generation: number, phase: string) =>
    eventually(`${name} generation ${generation} to be ${phase}`, async () => {
      const state = await stateOf(states, deviceId, name);
      return state?.generation === generation && state.phase === phase ? state : undefined;
    }, TIMEOUT_MS);

  try {
    // The neighbour: an ordinary deployment with a read-only mount under the allowed prefix.
    await desiredKv.put(
      keys.desiredState(deviceId, { namespace: NAMESPACE, name: "neighbour" }),
      desired("neighbour", 1, {
        image,
        volumes: [{
          hostPath: `${allowed}/page.html`,
          containerPath: "/www/page.html",
          readOnly: true,
        }],
      }),
    );
    await waitForPhase("neighbour", 1, "Running");
    const [neighbour] = await containersOf("neighbour");
    assert.ok(neighbour, "the neighbour runs");

    // Podman gave it the default limits a Pi survives.
    const inspected = await inspectRaw(svc.socketPath, neighbour.id);
    const host = inspected.HostConfig as Record<string, number>;
    assert.equal(host.Memory, 512 * 1024 * 1024, "memory limit");
    assert.equal(host.PidsLimit, 512, "pids limit");
    assert.deepEqual([host.CpuQuota, host.CpuPeriod], [100_000, 100_000], "one CPU");

    const attacks: { name: string; service: Record<string, unknown>; rule: RegExp }[] = [
      {
        name: "steal-key",
        service: { image, volumes: [{ hostPath: keyFile, containerPath: "/k", readOnly: true }] },
        rule:
          /host path .*\/etc\/key\.json is the agent's config directory .*no workload may mount/,
      },
      {
        name: "rewrite-config",
        service: {
          image,
          volumes: [{ hostPath: configDir, containerPath: "/c", readOnly: false }],
        },
        rule: /host path .*\/etc is the agent's config directory/,
      },
      {
        name: "poison-cache",
        service: { image, volumes: [{ hostPath: stateDir, containerPath: "/s", readOnly: false }] },
        rule: /host path .*\/state is the agent's state directory/,
      },
      {
        name: "podman-socket",
        service: {
          image,
          volumes: [{
            hostPath: svc.socketPath,
            containerPath: "/run/podman.sock",
            readOnly: false,
          }],
        },
        rule: /is the podman socket/,
      },
      {
        name: "whole-host",
        service: { image, volumes: [{ hostPath: "/", containerPath: "/host", readOnly: false }] },
        rule: /host path \/ holds /,
      },
      {
        name: "symlink",
        service: {
          image,
          volumes: [{ hostPath: `${allowed}/innocent`, containerPath: "/c", readOnly: true }],
        },
        rule: /host path .*\/srv\/innocent \(really .*\/etc\) is the agent's config directory/,
      },
      {
        name: "privileged",
        service: { image, privileged: true },
        rule:
          /service app asks for privileged mode, which this device does not allow \(policy\.privileged\)/,
      },
      {
        name: "host-network",
        service: { image, hostNetwork: true },
        rule:
          /service app asks for the host network, which this device does not allow \(policy\.host_network\)/,
      },
      {
        name: "greedy",
        service: { image, resources: { limits: { memoryMb: 4096 } } },
        rule: /asks for 4096 MiB of memory; this device allows at most 512 MiB/,
      },
      {
        name: "foreign-image",
        service: { image: "docker.io/library/busybox:1.36" },
        rule:
          /image docker\.io\/library\/busybox:1\.36 is not from an allowed registry; this device takes images only from localhost \(policy\.registries\)/,
      },
    ];
    for (const attack of attacks) {
      await desiredKv.put(
        keys.desiredState(deviceId, { namespace: NAMESPACE, name: attack.name }),
        desired(attack.name, 1, attack.service),
      );
    }
    for (const attack of attacks) {
      const state = await waitForPhase(attack.name, 1, "Failed");
      assert.match(state.lastError ?? "", /^refused by this device's policy: /, attack.name);
      assert.match(state.lastError ?? "", attack.rule, attack.name);
      assert.deepEqual(await containersOf(attack.name), [], `${attack.name}: no container`);
    }

    // The container an earlier agent left with the key mounted is removed, not kept running.
    const legacy = await waitForPhase("legacy", 1, "Failed");
    assert.match(legacy.lastError ?? "", /is the agent's config directory/);
    await eventually(
      "the legacy container to be removed",
      async () => (await containersOf("legacy")).length === 0,
    );

    // A refused update leaves the running generation as it was.
    await desiredKv.put(
      keys.desiredState(deviceId, { namespace: NAMESPACE, name: "neighbour" }),
      desired("neighbour", 2, {
        image,
        volumes: [{ hostPath: keyFile, containerPath: "/www/page.html", readOnly: true }],
      }),
    );
    const refused = await waitForPhase("neighbour", 2, "Failed");
    assert.match(refused.lastError ?? "", /is the agent's config directory/);
    const after = await containersOf("neighbour");
    assert.deepEqual(after.map((c) => [c.id, c.state]), [[neighbour.id, "running"]]);
    assert.equal(await Deno.readTextFile(keyFile), '{"kty":"OKP","d":"secret"}');
  } finally {
    controller.abort();
    await running;
    for (const c of await client.listContainers({ [ContainerLabels.deviceId]: deviceId })) {
      await client.removeContainer(c.id);
    }
    await nc.close();
    await Deno.remove(root, { recursive: true });
  }
});
