/**
 * What a workload may ask of a device: the device policy (from the agent's config) decides,
 * for one desired score, whether it may run and with which limits. Pure: the agent resolves
 * symlinks on the device and passes the real paths in.
 */
import type { PodmanService, Score } from "./score.ts";

/** A host path prefix a workload may mount; read-only unless `writable`. */
export interface HostPathRule {
  prefix: string;
  writable: boolean;
}

/** A container's memory (MiB), CPUs and process count. */
export interface Limits {
  memoryMb: number;
  cpus: number;
  pids: number;
}

/** The device policy, as the agent's `[policy]` table sets it. */
export interface DevicePolicy {
  /** Where workloads may mount host paths; none when empty. */
  hostPaths: readonly HostPathRule[];
  privileged: boolean;
  hostNetwork: boolean;
  hostPid: boolean;
  /** The most each container may use, and what it gets when it asks nothing. */
  limits: Limits;
  /** Registries (or registry/path prefixes) images may come from; any when absent. */
  registries?: readonly string[];
  /** Images must be pinned by digest (`image@sha256:...`). */
  requireDigest: boolean;
}

/**
 * Limits a Raspberry Pi 5 (4 cores, 4-8 GB) survives with several containers: no single
 * container can take the memory, the CPUs or the process table the agent needs.
 */
export const DEFAULT_LIMITS: Limits = { memoryMb: 512, cpus: 1, pids: 512 };

/** The policy of an agent config without a `[policy]` table. */
export const DEFAULT_DEVICE_POLICY: DevicePolicy = {
  hostPaths: [],
  privileged: false,
  hostNetwork: false,
  hostPid: false,
  limits: DEFAULT_LIMITS,
  requireDigest: false,
};

/** A path on the device no workload may mount, nor any directory holding it. */
export interface ProtectedPath {
  path: string;
  /** What it is, for the message: `the agent's key file`. */
  what: string;
}

export interface PolicyInput {
  policy: DevicePolicy;
  /** Absolute, normalized paths (the agent adds their symlink-resolved forms too). */
  protectedPaths: readonly ProtectedPath[];
  score: Score;
  /** A host path as written → where it really is on the device, when that differs. */
  realPaths?: ReadonlyMap<string, string>;
}

/**
 * Allowed: the score to run, with every service's limits set and host paths replaced by
 * their real paths (what was checked is what is mounted). Refused: one readable line per
 * rule broken.
 */
export type PolicyDecision =
  | { allowed: true; score: Score }
  | { allowed: false; violations: string[] };

/** The config key each rule comes from, named in messages so a person knows what to change. */
const KEY = {
  hostPaths: "[[policy.host_paths]]",
  privileged: "policy.privileged",
  hostNetwork: "policy.host_network",
  hostPid: "policy.host_pid",
  memoryMb: "policy.limits.memory_mb",
  cpus: "policy.limits.cpus",
  pids: "policy.limits.pids",
  registries: "policy.registries",
  requireDigest: "policy.require_digest",
} as const;

/**
 * `path` without empty segments, or why it cannot be judged: relative, or with `.` or `..`
 * segments (which could step out of an allowed prefix).
 */
export function normalizeHostPath(path: string): { path: string } | { problem: string } {
  if (!path.startsWith("/")) return { problem: "is not an absolute path" };
  const segments = path.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..")) {
    return { problem: "has '.' or '..' segments; write the path without them" };
  }
  return { path: `/${segments.join("/")}` };
}

/** Whether `path` is `prefix` or inside it, segment by segment (/data2 is not under /data). */
export function isUnder(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

/** The most specific rule whose prefix holds `path`. */
function ruleFor(rules: readonly HostPathRule[], path: string): HostPathRule | undefined {
  let best: HostPathRule | undefined;
  for (const rule of rules) {
    const prefix = normalizeHostPath(rule.prefix);
    if (!("path" in prefix) || !isUnder(path, prefix.path)) continue;
    if (best === undefined || prefix.path.length > best.prefix.length) {
      best = { prefix: prefix.path, writable: rule.writable };
    }
  }
  return best;
}

/**
 * Where an image comes from, `registry/path` without tag or digest; undefined for a short
 * name (`nginx`, `library/nginx`), which podman resolves through its own search list.
 */
export function imageLocation(image: string): string | undefined {
  const name = image.split("@")[0]!;
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  const repository = colon > slash ? name.slice(0, colon) : name;
  const first = repository.split("/")[0]!;
  const isRegistry = repository.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost");
  return isRegistry ? `${first.toLowerCase()}${repository.slice(first.length)}` : undefined;
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;

function formatPrefixes(rules: readonly HostPathRule[]): string {
  return rules.length === 0
    ? "this device allows no host paths"
    : `this device allows ${
      rules.map((r) => `${r.prefix}${r.writable ? " (writable)" : ""}`).join(", ")
    }`;
}

/** The rules one volume breaks. */
function checkVolume(
  input: PolicyInput,
  service: string,
  volume: PodmanService["volumes"][number],
): { violations: string[]; realPath: string } {
  const where = `service ${service}: host path ${volume.hostPath}`;
  const normal = normalizeHostPath(volume.hostPath);
  if (!("path" in normal)) {
    return { violations: [`${where} ${normal.problem}`], realPath: volume.hostPath };
  }
  const realPath = input.realPaths?.get(volume.hostPath) ?? normal.path;
  const shown = realPath === normal.path ? where : `${where} (really ${realPath})`;
  for (const path of new Set([normal.path, realPath])) {
    const hit = input.protectedPaths.find((p) => isUnder(path, p.path) || isUnder(p.path, path));
    if (hit) {
      const how = isUnder(path, hit.path) ? "is" : "holds";
      return {
        violations: [
          `${shown} ${how} ${hit.what} (${hit.path}), which no workload may mount whatever the policy says`,
        ],
        realPath,
      };
    }
  }
  const { hostPaths } = input.policy;
  // Both the path as written and where it leads must be allowed: a symlink under an allowed
  // prefix must not lead out of it.
  const rules = [ruleFor(hostPaths, normal.path), ruleFor(hostPaths, realPath)];
  if (rules.some((r) => r === undefined)) {
    return {
      violations: [
        `${shown} is not under an allowed prefix (${
          formatPrefixes(hostPaths)
        }; ${KEY.hostPaths} in the agent config)`,
      ],
      realPath,
    };
  }
  if (!volume.readOnly && rules.some((r) => !r!.writable)) {
    const rule = rules.find((r) => !r!.writable)!;
    return {
      violations: [
        `${shown} is mounted read-write but ${rule.prefix} is read-only on this device; ` +
        `set readOnly: true, or writable = true for that prefix in ${KEY.hostPaths}`,
      ],
      realPath,
    };
  }
  return { violations: [], realPath };
}

function checkImage(policy: DevicePolicy, service: PodmanService): string[] {
  const violations: string[] = [];
  const where = `service ${service.name}: image ${service.image}`;
  if (policy.registries !== undefined) {
    const location = imageLocation(service.image);
    const allowed = policy.registries.map((r) => r.replace(/\/+$/, "").toLowerCase());
    const list = allowed.length === 0 ? "none" : allowed.join(", ");
    if (location === undefined) {
      violations.push(
        `${where} does not name its registry; this device takes images only from ${list} ` +
          `(${KEY.registries}), so write it in full, e.g. docker.io/library/nginx:1.27`,
      );
    } else if (!allowed.some((entry) => isUnder(`/${location}`, `/${entry}`))) {
      violations.push(
        `${where} is not from an allowed registry; this device takes images only from ${list} (${KEY.registries})`,
      );
    }
  }
  if (policy.requireDigest && !DIGEST.test(service.image)) {
    violations.push(
      `${where} is not pinned by digest; this device runs only image@sha256:<digest> (${KEY.requireDigest})`,
    );
  }
  return violations;
}

function checkPrivileges(policy: DevicePolicy, service: PodmanService): string[] {
  const asks = [
    {
      asked: service.privileged,
      allowed: policy.privileged,
      what: "privileged mode",
      key: KEY.privileged,
    },
    {
      asked: service.hostNetwork,
      allowed: policy.hostNetwork,
      what: "the host network",
      key: KEY.hostNetwork,
    },
    {
      asked: service.hostPid,
      allowed: policy.hostPid,
      what: "the host PID namespace",
      key: KEY.hostPid,
    },
  ];
  return asks.filter((a) => a.asked === true && !a.allowed).map((a) =>
    `service ${service.name} asks for ${a.what}, which this device does not allow (${a.key})`
  );
}

/** The service's limits: what it asks, within the policy's, or the policy's when it asks none. */
function checkLimits(
  policy: DevicePolicy,
  service: PodmanService,
): { violations: string[]; limits: Limits } {
  const asked = service.resources?.limits ?? {};
  const max = policy.limits;
  const violations: string[] = [];
  const units = { memoryMb: " MiB of memory", cpus: " CPUs", pids: " processes" } as const;
  for (const key of ["memoryMb", "cpus", "pids"] as const) {
    const value = asked[key];
    if (value !== undefined && value > max[key]) {
      violations.push(
        `service ${service.name} asks for ${value}${units[key]}; this device allows at most ` +
          `${max[key]}${units[key]} per container (${KEY[key]})`,
      );
    }
  }
  return {
    violations,
    limits: {
      memoryMb: asked.memoryMb ?? max.memoryMb,
      cpus: asked.cpus ?? max.cpus,
      pids: asked.pids ?? max.pids,
    },
  };
}

/**
 * Decides whether the device runs `score`. Every rule is checked for every service, so one
 * answer lists everything to fix.
 */
export function decidePolicy(input: PolicyInput): PolicyDecision {
  const violations: string[] = [];
  const services = input.score.data.services.map((service): PodmanService => {
    const volumes = service.volumes.map((volume) => {
      const checked = checkVolume(input, service.name, volume);
      violations.push(...checked.violations);
      return { ...volume, hostPath: checked.realPath };
    });
    violations.push(...checkPrivileges(input.policy, service));
    violations.push(...checkImage(input.policy, service));
    const { violations: limitViolations, limits } = checkLimits(input.policy, service);
    violations.push(...limitViolations);
    return { ...service, volumes, resources: { ...service.resources, limits } };
  });
  if (violations.length > 0) return { allowed: false, violations };
  return { allowed: true, score: { ...input.score, data: { ...input.score.data, services } } };
}

/**
 * The agent's own paths in the packaged install (`fleet device enroll`, the .deb): no device
 * set up that way lets a workload mount them, so `fleet apply` can refuse them outright.
 */
export const PACKAGED_AGENT_PATHS: readonly ProtectedPath[] = [
  { path: "/etc/fleet-agent", what: "the agent's config directory" },
  { path: "/var/lib/fleet-agent", what: "the agent's state directory" },
  { path: "/home/fleet-agent", what: "the agent user's home directory" },
  { path: "/run/podman", what: "the podman socket's directory" },
  { path: "/var/run/podman", what: "the podman socket's directory" },
];

/** Allows everything a policy can allow: what it still refuses, no policy allows. */
const PERMISSIVE_POLICY: DevicePolicy = {
  hostPaths: [{ prefix: "/", writable: true }],
  privileged: true,
  hostNetwork: true,
  hostPid: true,
  limits: { memoryMb: Infinity, cpus: Infinity, pids: Infinity },
  requireDigest: false,
};

/**
 * What can be told of a score before it ships, without knowing the devices' policies:
 * `errors`, what no packaged device runs (its agent's paths, `..` in a host path), and
 * `warnings`, the privileges and limits a device with the default policy refuses. Host paths
 * get no warning: allowing some is every policy's ordinary job, and a device that does not
 * reports the prefixes it allows.
 */
export function foreseePolicyRefusals(score: Score): { errors: string[]; warnings: string[] } {
  const never = decidePolicy({
    policy: PERMISSIVE_POLICY,
    protectedPaths: PACKAGED_AGENT_PATHS,
    score,
  });
  if (!never.allowed) return { errors: never.violations, warnings: [] };
  const byDefault = decidePolicy({
    policy: { ...DEFAULT_DEVICE_POLICY, hostPaths: PERMISSIVE_POLICY.hostPaths },
    protectedPaths: [],
    score,
  });
  return { errors: [], warnings: byDefault.allowed ? [] : byDefault.violations };
}

/** What a running container was given: its bind mounts and host namespaces. */
export interface ContainerGrants {
  mounts: readonly { hostPath: string; readOnly: boolean }[];
  privileged: boolean;
  hostNetwork: boolean;
  hostPid: boolean;
}

/**
 * The rules a running container of service `service` breaks (an agent before the policy, or
 * a policy since tightened, created it): the policy's mount and privilege rules. Its limits
 * and image are not judged again: they reach nothing of the device's identity.
 */
export function grantViolations(
  input: Omit<PolicyInput, "score"> & { service: string; grants: ContainerGrants },
): string[] {
  const { grants } = input;
  const score: Score = {
    type: "PodmanV0",
    data: {
      services: [{
        name: input.service,
        image: "running",
        ports: [],
        env: [],
        volumes: grants.mounts.map((m) => ({ ...m, containerPath: "/" })),
        restartPolicy: "no",
        privileged: grants.privileged,
        hostNetwork: grants.hostNetwork,
        hostPid: grants.hostPid,
      }],
    },
  };
  const { hostPaths, privileged, hostNetwork, hostPid } = input.policy;
  const decision = decidePolicy({
    ...input,
    policy: { ...PERMISSIVE_POLICY, hostPaths, privileged, hostNetwork, hostPid },
    score,
  });
  return decision.allowed ? [] : decision.violations;
}
