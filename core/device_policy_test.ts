import assert from "node:assert/strict";
import {
  decidePolicy,
  DEFAULT_DEVICE_POLICY,
  type DevicePolicy,
  foreseePolicyRefusals,
  grantViolations,
  imageLocation,
  isUnder,
  normalizeHostPath,
  type PolicyInput,
  type ProtectedPath,
  Score,
} from "./mod.ts";

const PROTECTED: ProtectedPath[] = [
  { path: "/etc/fleet-agent", what: "the agent's config" },
  { path: "/etc/fleet-agent/key.json", what: "the agent's key file" },
  { path: "/var/lib/fleet-agent", what: "the agent's state directory" },
  { path: "/run/podman/podman.sock", what: "the podman socket" },
  { path: "/root", what: "the agent user's home directory" },
];

const POLICY: DevicePolicy = {
  ...DEFAULT_DEVICE_POLICY,
  hostPaths: [{ prefix: "/srv/fleet", writable: false }, {
    prefix: "/srv/fleet/data",
    writable: true,
  }],
};

function score(service: Record<string, unknown>): Score {
  return Score.parse({
    type: "PodmanV0",
    data: { services: [{ name: "web", image: "docker.io/library/nginx:1.27", ...service }] },
  });
}

function decide(service: Record<string, unknown>, extra: Partial<PolicyInput> = {}) {
  return decidePolicy({
    policy: POLICY,
    protectedPaths: PROTECTED,
    score: score(service),
    ...extra,
  });
}

function violations(service: Record<string, unknown>, extra: Partial<PolicyInput> = {}): string[] {
  const decision = decide(service, extra);
  assert.equal(decision.allowed, false, "expected a refusal");
  return decision.allowed ? [] : decision.violations;
}

function mount(hostPath: string, readOnly = true) {
  return { volumes: [{ hostPath, containerPath: "/data", readOnly }] };
}

Deno.test("isUnder() matches whole path segments: /data2 is not under /data, everything is under /", () => {
  assert.equal(isUnder("/data", "/data"), true);
  assert.equal(isUnder("/data/x", "/data"), true);
  assert.equal(isUnder("/data2", "/data"), false);
  assert.equal(isUnder("/dat", "/data"), false);
  assert.equal(isUnder("/etc", "/"), true);
});

Deno.test("normalizeHostPath() drops empty segments and refuses relative paths and . or .. segments", () => {
  assert.deepEqual(normalizeHostPath("//srv//fleet/"), { path: "/srv/fleet" });
  assert.deepEqual(normalizeHostPath("/"), { path: "/" });
  assert.ok("problem" in normalizeHostPath("srv/fleet"));
  assert.ok("problem" in normalizeHostPath("/srv/fleet/../../etc"));
  assert.ok("problem" in normalizeHostPath("/srv/./fleet"));
});

Deno.test("decidePolicy() allows a read-only mount under an allowed prefix and a read-write one under a writable prefix", () => {
  assert.equal(decide(mount("/srv/fleet/web")).allowed, true);
  assert.equal(decide(mount("/srv/fleet/data/db", false)).allowed, true);
  assert.equal(decide(mount("/srv/fleet", true)).allowed, true);
});

Deno.test("decidePolicy() refuses a host path outside every prefix, naming service, path and what is allowed", () => {
  const [message] = violations(mount("/srv/fleet2/web"));
  assert.equal(
    message,
    "service web: host path /srv/fleet2/web is not under an allowed prefix (this device allows " +
      "/srv/fleet, /srv/fleet/data (writable); [[policy.host_paths]] in the agent config)",
  );
});

Deno.test("decidePolicy() refuses every host path under the default policy", () => {
  const decision = decidePolicy({
    policy: DEFAULT_DEVICE_POLICY,
    protectedPaths: [],
    score: score(mount("/srv/fleet/web")),
  });
  assert.equal(decision.allowed, false);
  assert.match(decision.allowed ? "" : decision.violations[0]!, /this device allows no host paths/);
});

Deno.test("decidePolicy() refuses a read-write mount under a read-only prefix (the most specific prefix decides)", () => {
  const [message] = violations(mount("/srv/fleet/web", false));
  assert.equal(
    message,
    "service web: host path /srv/fleet/web is mounted read-write but /srv/fleet is read-only on " +
      "this device; set readOnly: true, or writable = true for that prefix in [[policy.host_paths]]",
  );
});

Deno.test("decidePolicy() refuses a path with .. even when it starts under an allowed prefix", () => {
  const [message] = violations(mount("/srv/fleet/../../etc/fleet-agent"));
  assert.match(
    message!,
    /^service web: host path \/srv\/fleet\/\.\.\/\.\.\/etc\/fleet-agent has '\.' or '\.\.' segments/,
  );
});

Deno.test("decidePolicy() refuses the agent's protected paths, what lies inside them and what holds them, whatever the policy allows", () => {
  const everything: DevicePolicy = { ...POLICY, hostPaths: [{ prefix: "/", writable: true }] };
  const cases: [string, RegExp][] = [
    ["/etc/fleet-agent/key.json", /is the agent's config \(\/etc\/fleet-agent\)/],
    ["/etc/fleet-agent", /is the agent's config/],
    ["/var/lib/fleet-agent/cache", /is the agent's state directory/],
    ["/run/podman", /holds the podman socket \(\/run\/podman\/podman\.sock\)/],
    ["/run/podman/podman.sock", /is the podman socket/],
    ["/root/.ssh", /is the agent user's home directory/],
    ["/", /holds the agent's config/],
    ["/etc", /holds the agent's config/],
    ["//etc//fleet-agent/", /is the agent's config/],
  ];
  for (const [hostPath, rule] of cases) {
    const found = violations(mount(hostPath, false), { policy: everything });
    assert.equal(found.length, 1, hostPath);
    assert.match(found[0]!, rule, hostPath);
    assert.match(found[0]!, /which no workload may mount whatever the policy says$/, hostPath);
  }
  // A sibling whose name only starts like a protected one is not protected.
  assert.equal(decide(mount("/etc/fleet-agent2", false), { policy: everything }).allowed, true);
});

Deno.test("decidePolicy() judges where a symlink leads: into a protected path or out of the allowed prefixes is refused", () => {
  const intoKey = violations(mount("/srv/fleet/link"), {
    realPaths: new Map([["/srv/fleet/link", "/etc/fleet-agent/key.json"]]),
  });
  assert.match(
    intoKey[0]!,
    /^service web: host path \/srv\/fleet\/link \(really \/etc\/fleet-agent\/key\.json\) is the agent's config/,
  );
  const outside = violations(mount("/srv/fleet/link"), {
    realPaths: new Map([["/srv/fleet/link", "/home/pi/photos"]]),
  });
  assert.match(outside[0]!, /\(really \/home\/pi\/photos\) is not under an allowed prefix/);
  // Read-write through a link from the writable prefix into the read-only one.
  const readOnly = violations(mount("/srv/fleet/data/link", false), {
    realPaths: new Map([["/srv/fleet/data/link", "/srv/fleet/web"]]),
  });
  assert.match(readOnly[0]!, /mounted read-write but \/srv\/fleet is read-only/);
});

Deno.test("decidePolicy() mounts the real path it judged", () => {
  const decision = decide(mount("/srv/fleet/link"), {
    realPaths: new Map([["/srv/fleet/link", "/srv/fleet/web"]]),
  });
  assert.ok(decision.allowed);
  assert.equal(decision.score.data.services[0]!.volumes[0]!.hostPath, "/srv/fleet/web");
});

Deno.test("decidePolicy() refuses privileged mode, the host network and the host PID namespace unless each is allowed", () => {
  const asking = { privileged: true, hostNetwork: true, hostPid: true };
  assert.deepEqual(violations(asking), [
    "service web asks for privileged mode, which this device does not allow (policy.privileged)",
    "service web asks for the host network, which this device does not allow (policy.host_network)",
    "service web asks for the host PID namespace, which this device does not allow (policy.host_pid)",
  ]);
  const permissive = { ...POLICY, privileged: true, hostNetwork: true, hostPid: true };
  assert.equal(decide(asking, { policy: permissive }).allowed, true);
  assert.deepEqual(violations({ hostNetwork: true }, { policy: { ...POLICY, privileged: true } }), [
    "service web asks for the host network, which this device does not allow (policy.host_network)",
  ]);
  assert.equal(decide({ privileged: false, hostNetwork: false, hostPid: false }).allowed, true);
});

Deno.test("decidePolicy() gives a service that asks no limits the policy's, Pi-sized by default", () => {
  const decision = decide({});
  assert.ok(decision.allowed);
  assert.deepEqual(decision.score.data.services[0]!.resources, {
    limits: { memoryMb: 512, cpus: 1, pids: 512 },
  });
});

Deno.test("decidePolicy() keeps limits a service asks within the policy and fills the others", () => {
  const decision = decide({ resources: { limits: { memoryMb: 128 } } });
  assert.ok(decision.allowed);
  assert.deepEqual(decision.score.data.services[0]!.resources?.limits, {
    memoryMb: 128,
    cpus: 1,
    pids: 512,
  });
});

Deno.test("decidePolicy() refuses limits above the policy's, naming value, maximum and key", () => {
  assert.deepEqual(
    violations({ resources: { limits: { memoryMb: 2048, cpus: 4, pids: 10_000 } } }),
    [
      "service web asks for 2048 MiB of memory; this device allows at most 512 MiB of memory per container (policy.limits.memory_mb)",
      "service web asks for 4 CPUs; this device allows at most 1 CPUs per container (policy.limits.cpus)",
      "service web asks for 10000 processes; this device allows at most 512 processes per container (policy.limits.pids)",
    ],
  );
});

Deno.test("imageLocation() names registry and path, and nothing for a short name podman would search for", () => {
  assert.equal(imageLocation("docker.io/library/nginx:1.27"), "docker.io/library/nginx");
  assert.equal(
    imageLocation("Registry.Example.com:5000/team/app@sha256:ab"),
    "registry.example.com:5000/team/app",
  );
  assert.equal(imageLocation("localhost/fleet-test:v1"), "localhost/fleet-test");
  assert.equal(imageLocation("127.0.0.1:5000/fleet/x"), "127.0.0.1:5000/fleet/x");
  assert.equal(imageLocation("nginx:1.27"), undefined);
  assert.equal(imageLocation("library/nginx"), undefined);
});

Deno.test("decidePolicy() takes images only from the allowed registries when a list is set, by whole path segments", () => {
  const policy = { ...POLICY, registries: ["registry.example.com", "docker.io/myorg/"] };
  assert.equal(decide({ image: "registry.example.com/app:1" }, { policy }).allowed, true);
  assert.equal(decide({ image: "docker.io/myorg/app:1" }, { policy }).allowed, true);
  assert.deepEqual(violations({ image: "docker.io/myorg2/app:1" }, { policy }), [
    "service web: image docker.io/myorg2/app:1 is not from an allowed registry; this device takes " +
    "images only from registry.example.com, docker.io/myorg (policy.registries)",
  ]);
  assert.match(
    violations({ image: "registry.example.com.evil.io/app:1" }, { policy })[0]!,
    /not from an allowed registry/,
  );
  assert.match(
    violations({ image: "nginx:1.27" }, { policy })[0]!,
    /^service web: image nginx:1\.27 does not name its registry; .* write it in full/,
  );
  // No list: any image.
  assert.equal(decide({ image: "nginx:1.27" }).allowed, true);
});

Deno.test("decidePolicy() requires a digest when the policy says so", () => {
  const policy = { ...POLICY, requireDigest: true };
  const pinned = `docker.io/library/nginx@sha256:${"a".repeat(64)}`;
  assert.equal(decide({ image: pinned }, { policy }).allowed, true);
  assert.deepEqual(violations({ image: "docker.io/library/nginx:1.27" }, { policy }), [
    "service web: image docker.io/library/nginx:1.27 is not pinned by digest; this device runs " +
    "only image@sha256:<digest> (policy.require_digest)",
  ]);
});

Deno.test("decidePolicy() lists every rule broken by every service at once", () => {
  const decision = decidePolicy({
    policy: POLICY,
    protectedPaths: PROTECTED,
    score: Score.parse({
      type: "PodmanV0",
      data: {
        services: [
          {
            name: "a",
            image: "x.io/a",
            privileged: true,
            volumes: mount("/etc/fleet-agent").volumes,
          },
          { name: "b", image: "x.io/b", hostPid: true },
        ],
      },
    }),
  });
  assert.equal(decision.allowed, false);
  const found = decision.allowed ? [] : decision.violations;
  assert.equal(found.length, 3);
  assert.match(found[0]!, /^service a: host path \/etc\/fleet-agent/);
  assert.match(found[1]!, /^service a asks for privileged mode/);
  assert.match(found[2]!, /^service b asks for the host PID namespace/);
});

Deno.test("foreseePolicyRefusals() calls the packaged agent's paths and '..' errors, whatever a device's policy", () => {
  for (
    const hostPath of [
      "/etc/fleet-agent/device-key.json",
      "/",
      "/var",
      "/var/run/podman",
      "/srv/../etc",
    ]
  ) {
    const { errors, warnings } = foreseePolicyRefusals(score(mount(hostPath, false)));
    assert.equal(errors.length, 1, hostPath);
    assert.deepEqual(warnings, [], hostPath);
  }
});

Deno.test("foreseePolicyRefusals() warns of the privileges and limits the default policy refuses, not of host paths", () => {
  assert.deepEqual(foreseePolicyRefusals(score(mount("/srv/web", false))), {
    errors: [],
    warnings: [],
  });
  const { errors, warnings } = foreseePolicyRefusals(score({
    ...mount("/srv/web"),
    privileged: true,
    hostNetwork: true,
    hostPid: true,
    resources: { limits: { memoryMb: 2048 } },
  }));
  assert.deepEqual(errors, []);
  assert.equal(warnings.length, 4);
  assert.match(warnings[0]!, /asks for privileged mode/);
  assert.match(warnings[3]!, /asks for 2048 MiB of memory/);
});

Deno.test("grantViolations() judges a running container's mounts and namespaces by the current policy, not its limits or image", () => {
  const policy = { ...POLICY, registries: ["registry.example.com"], requireDigest: true };
  const grants = {
    mounts: [{ hostPath: "/etc/fleet-agent/key.json", readOnly: true }, {
      hostPath: "/srv/fleet/web",
      readOnly: true,
    }],
    privileged: true,
    hostNetwork: false,
    hostPid: false,
  };
  assert.deepEqual(
    grantViolations({ policy, protectedPaths: PROTECTED, service: "legacy", grants }),
    [
      "service legacy: host path /etc/fleet-agent/key.json is the agent's config (/etc/fleet-agent), which no workload may mount whatever the policy says",
      "service legacy asks for privileged mode, which this device does not allow (policy.privileged)",
    ],
  );
  const compliant = { ...grants, mounts: [grants.mounts[1]!], privileged: false };
  assert.deepEqual(
    grantViolations({ policy, protectedPaths: PROTECTED, service: "web", grants: compliant }),
    [],
  );
});
