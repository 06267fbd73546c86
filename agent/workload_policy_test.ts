import assert from "node:assert/strict";
import {
  type ContainerGrants,
  containerLabels,
  DEFAULT_DEVICE_POLICY,
  type DesiredEntry,
  type DevicePolicy,
  type ObservedContainer,
  Score,
} from "../core/mod.ts";
import { AgentConfig } from "./config.ts";
import { protectedPaths, realPath, WorkloadPolicy } from "./workload_policy.ts";

const REF = { namespace: "default", name: "web" };

function entry(volumes: { hostPath: string; readOnly?: boolean }[]): DesiredEntry {
  return {
    ref: REF,
    generation: 3,
    score: Score.parse({
      type: "PodmanV0",
      data: {
        services: [{
          name: "web",
          image: "localhost/web:1",
          volumes: volumes.map((v) => ({ containerPath: "/data", readOnly: true, ...v })),
        }],
      },
    }),
  };
}

async function enforce(
  policy: DevicePolicy,
  protectedDir: string,
  desired: DesiredEntry,
): Promise<DesiredEntry> {
  const gate = new WorkloadPolicy({
    policy,
    protectedPaths: [{ path: protectedDir, what: "the agent's config directory" }],
    grants: () => Promise.reject(new Error("not asked")),
  });
  const out = await gate.enforce(new Map([["default.web", desired]]));
  return out.get("default.web")!;
}

Deno.test("protectedPaths() names the agent's config directory, key, password file, state, socket, home and runtime directories", () => {
  const config = AgentConfig.parse({
    device_id: "pi-01",
    state_dir: "/var/lib/fleet-agent/",
    nats: {
      urls: ["nats://127.0.0.1:4222"],
      credentials: { type: "oidc", issuer: "https://idp", key_file: "/etc/fleet/keys/pi.json" },
    },
    podman: { socket: "/run/podman/podman.sock" },
  });
  const paths = protectedPaths(config, "/etc/fleet-agent/config.toml", {
    home: "/home/fleet",
    runtimeDir: "/run/user/990",
  });
  assert.deepEqual(paths, [
    { path: "/etc/fleet-agent", what: "the agent's config directory" },
    { path: "/etc/fleet/keys/pi.json", what: "the agent's key file" },
    { path: "/var/lib/fleet-agent", what: "the agent's state directory" },
    { path: "/run/podman/podman.sock", what: "the podman socket" },
    { path: "/home/fleet", what: "the agent user's home directory" },
    { path: "/run/user/990", what: "the agent user's runtime directory" },
  ]);
  const userpass = AgentConfig.parse({
    device_id: "pi-01",
    nats: {
      urls: ["nats://127.0.0.1:4222"],
      credentials: { type: "userpass", user: "pi", password_file: "/opt/pw" },
    },
    podman: { socket: "/run/podman/podman.sock" },
  });
  assert.ok(
    protectedPaths(userpass, undefined, {}).some((p) =>
      p.path === "/opt/pw" && p.what === "the agent's password file"
    ),
  );
  // Without XDG_RUNTIME_DIR (a systemd service), a rootless socket names the runtime directory.
  const rootless = AgentConfig.parse({
    device_id: "pi-01",
    nats: { urls: ["nats://127.0.0.1:4222"] },
    podman: { socket: "/run/user/1001/podman/podman.sock" },
  });
  assert.deepEqual(
    protectedPaths(rootless, undefined, {}).filter((p) => p.what.includes("runtime")),
    [{ path: "/run/user/1001", what: "the agent user's runtime directory" }],
  );
});

Deno.test("realPath() resolves symlinks, and for a path not there yet those of its nearest existing parent", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "fleet-realpath-" }));
  try {
    await Deno.mkdir(`${root}/target`);
    await Deno.symlink(`${root}/target`, `${root}/link`);
    assert.equal(await realPath(`${root}/link`), `${root}/target`);
    assert.equal(await realPath(`${root}/link/new/deeper`), `${root}/target/new/deeper`);
    assert.equal(await realPath("/"), "/");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("WorkloadPolicy.enforce() refuses a symlink that leads into a protected directory, and fills limits for an allowed entry", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "fleet-policy-" }));
  try {
    await Deno.mkdir(`${root}/agent`);
    await Deno.mkdir(`${root}/srv`);
    await Deno.symlink(`${root}/agent`, `${root}/srv/link`);
    const policy = {
      ...DEFAULT_DEVICE_POLICY,
      hostPaths: [{ prefix: `${root}/srv`, writable: false }],
    };

    const refused = await enforce(
      policy,
      `${root}/agent`,
      entry([{ hostPath: `${root}/srv/link` }]),
    );
    assert.ok("error" in refused);
    assert.equal(refused.generation, 3);
    assert.equal(
      refused.error,
      `refused by this device's policy: service web: host path ${root}/srv/link (really ` +
        `${root}/agent) is the agent's config directory (${root}/agent), which no workload may ` +
        "mount whatever the policy says",
    );

    const allowed = await enforce(policy, `${root}/agent`, entry([{ hostPath: `${root}/srv/x` }]));
    assert.ok("score" in allowed);
    const service = allowed.score.data.services[0]!;
    assert.deepEqual(service.resources, { limits: { memoryMb: 512, cpus: 1, pids: 512 } });
    assert.equal(service.volumes[0]!.hostPath, `${root}/srv/x`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("WorkloadPolicy.enforce() protects a protected path by where it really is (/var/run is /run)", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "fleet-policy-" }));
  try {
    await Deno.mkdir(`${root}/run/podman`, { recursive: true });
    await Deno.symlink(`${root}/run`, `${root}/varrun`);
    const policy = { ...DEFAULT_DEVICE_POLICY, hostPaths: [{ prefix: root, writable: true }] };
    // The agent names its socket through the link; the workload names the real directory.
    const refused = await enforce(
      policy,
      `${root}/varrun/podman`,
      entry([{ hostPath: `${root}/run/podman`, readOnly: false }]),
    );
    assert.ok("error" in refused);
    assert.match(refused.error, /is the agent's config directory \(.*\/run\/podman\)/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("WorkloadPolicy.enforce() refuses a host path it cannot resolve, and passes unrunnable entries through", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "fleet-policy-" }));
  try {
    await Deno.symlink(`${root}/loop`, `${root}/loop`);
    const policy = { ...DEFAULT_DEVICE_POLICY, hostPaths: [{ prefix: root, writable: true }] };
    const refused = await enforce(policy, "/nonexistent", entry([{ hostPath: `${root}/loop` }]));
    assert.ok("error" in refused);
    assert.match(
      refused.error,
      /^refused by this device's policy: service web: host path .*\/loop cannot be resolved on this device/,
    );
    const unrunnable: DesiredEntry = { ref: REF, generation: 2, error: "unknown workload type" };
    assert.equal(await enforce(policy, "/nonexistent", unrunnable), unrunnable);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("WorkloadPolicy.evictions() names the containers of unaccepted deployments that break the policy, and asks nothing of accepted ones", async () => {
  const grants = new Map<string, ContainerGrants>([
    ["legacy", {
      mounts: [{ hostPath: "/etc/fleet-agent/key.json", readOnly: true }],
      privileged: false,
      hostNetwork: false,
      hostPid: false,
    }],
    ["tidy", { mounts: [], privileged: false, hostNetwork: false, hostPid: false }],
  ]);
  const asked: string[] = [];
  const gate = new WorkloadPolicy({
    policy: DEFAULT_DEVICE_POLICY,
    protectedPaths: [{ path: "/etc/fleet-agent", what: "the agent's config directory" }],
    grants: (id) => {
      asked.push(id);
      return Promise.resolve(grants.get(id));
    },
  });
  const container = (id: string, name: string): ObservedContainer => ({
    id,
    name: `fleet_pi_default_${name}_app`,
    labels: containerLabels(
      "pi",
      { namespace: "default", name },
      1,
      Score.parse({
        type: "PodmanV0",
        data: { services: [{ name: "app", image: "x.io/a" }] },
      }).data.services[0]!,
    ),
    state: "running",
    exitCode: 0,
  });
  const refused: DesiredEntry = {
    ref: { namespace: "default", name: "legacy" },
    generation: 2,
    error: "refused by this device's policy: ...",
  };
  const accepted = entry([]);
  const evict = await gate.evictions(
    [
      container("legacy", "legacy"),
      container("tidy", "tidy"),
      container("gone", "gone"),
      container("web", "web"),
    ],
    new Map([["default.legacy", refused], ["default.web", accepted]]),
  );
  assert.deepEqual([...evict.keys()], ["legacy"]);
  assert.equal(
    evict.get("legacy"),
    "it breaks this device's policy: service app: host path /etc/fleet-agent/key.json is the " +
      "agent's config directory (/etc/fleet-agent), which no workload may mount whatever the policy says",
  );
  assert.deepEqual(
    asked,
    ["legacy", "tidy", "gone"],
    "an accepted deployment's container is not inspected",
  );
});
