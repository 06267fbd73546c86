/**
 * Golden wire fixtures (fixtures/wire/): every wire type parses its canonical example and
 * re-serializes it byte-for-byte equivalent, and parses a newer writer's payload (unknown
 * fields at several depths) into the same value.
 */
import assert from "node:assert/strict";
import type * as z from "zod";
import YAML from "yaml";
import {
  Deployment,
  DeploymentState,
  DeploymentStatus,
  DesiredState,
  desiredStateOf,
  DeviceInfo,
  Heartbeat,
  LeaseRecord,
  parseJsonWith,
  RegisteredLabels,
  resolveScore,
  Score,
  type StoredDeployment,
  withSelectableLabels,
  WorkloadError,
} from "./mod.ts";
import { describeIssues } from "./errors.ts";
import {
  AuditRecord,
  CommandReply,
  DiagResult,
  ExecRequest,
  ExecResult,
  LogsRequest,
  LogsResult,
  PingResult,
  RestartRequest,
} from "./device_commands.ts";
import { SessionControl, SessionEnd, SessionNotice, StdinCredit } from "./device_sessions.ts";
import { RolloutStatus } from "./rollout_status.ts";
import { RevisionHistory } from "./revisions.ts";
import { RolloutAction } from "./rollout.ts";
import { RolloutActionRequest } from "./rollout_actions.ts";
import { PopulationChunk } from "./rollout_population.ts";

const WIRE = new URL("../fixtures/wire/", import.meta.url);
const DEPLOYMENTS = new URL("../fixtures/deployments/", import.meta.url);

async function readJson(name: string): Promise<unknown> {
  return JSON.parse(await Deno.readTextFile(new URL(name, WIRE)));
}

/** Normalizes a parsed value before comparing canonical and future variants. */
type Normalize = (parsed: unknown) => unknown;

interface WireCase {
  type: string;
  file: string;
  schema: z.ZodType;
  /** DesiredState carries the score opaquely, so compare it once resolved. */
  normalize?: Normalize;
  /** No nested objects in the type, so unknown fields can only be top-level. */
  flat?: boolean;
}

const CASES: WireCase[] = [
  {
    type: "DesiredState",
    file: "desired_state",
    schema: DesiredState,
    normalize: (v) => {
      const state = v as DesiredState;
      return { ...state, score: resolveScore(state.score) };
    },
  },
  { type: "DeviceInfo", file: "device_info", schema: DeviceInfo },
  { type: "DeploymentState", file: "deployment_state", schema: DeploymentState },
  { type: "Heartbeat", file: "heartbeat", schema: Heartbeat, flat: true },
  // Its one nested object is a record of labels: any key there is a label, not an extra field.
  { type: "RegisteredLabels", file: "registered_labels", schema: RegisteredLabels, flat: true },
  { type: "LeaseRecord", file: "lease", schema: LeaseRecord, flat: true },
  { type: "DeploymentStatus", file: "deployment_status", schema: DeploymentStatus },
  {
    type: "DeploymentStatus of a deployment targeting nothing",
    file: "deployment_status_unbound",
    schema: DeploymentStatus,
  },
  { type: "Deployment", file: "deployment", schema: Deployment },
  {
    type: "Deployment of every bound device",
    file: "deployment_all_bound",
    schema: Deployment,
  },
  { type: "Score PodmanV0", file: "score_podman_v0", schema: Score },
  { type: "RestartRequest", file: "restart_request", schema: RestartRequest, flat: true },
  { type: "PingResult", file: "ping_result", schema: PingResult, flat: true },
  { type: "DiagResult", file: "diag_result", schema: DiagResult },
  { type: "CommandReply", file: "command_reply", schema: CommandReply, flat: true },
  // Its one nested object is a record of arguments: any key there is an argument.
  { type: "AuditRecord", file: "audit_record", schema: AuditRecord, flat: true },
  {
    type: "AuditRecord (session)",
    file: "session_audit_record",
    schema: AuditRecord,
    flat: true,
  },
  { type: "LogsRequest", file: "logs_request", schema: LogsRequest, flat: true },
  { type: "LogsResult", file: "logs_result", schema: LogsResult, flat: true },
  { type: "SessionControl", file: "session_control", schema: SessionControl, flat: true },
  { type: "SessionEnd", file: "session_end", schema: SessionEnd, flat: true },
  { type: "ExecRequest", file: "exec_request", schema: ExecRequest },
  { type: "ExecResult", file: "exec_result", schema: ExecResult, flat: true },
  { type: "AuditRecord (exec)", file: "exec_audit_record", schema: AuditRecord, flat: true },
  { type: "SessionEnd (exec)", file: "exec_session_end", schema: SessionEnd, flat: true },
  { type: "SessionControl (resize)", file: "session_resize", schema: SessionControl, flat: true },
  { type: "StdinCredit", file: "stdin_credit", schema: StdinCredit, flat: true },
  { type: "SessionNotice", file: "session_notice", schema: SessionNotice, flat: true },
  {
    type: "Deployment with a Progressive rollout",
    file: "deployment_progressive",
    schema: Deployment,
  },
  { type: "RolloutStatus", file: "rollout_status", schema: RolloutStatus },
  { type: "RevisionHistory", file: "revision_history", schema: RevisionHistory },
  { type: "RolloutAction", file: "rollout_action", schema: RolloutAction, flat: true },
  {
    type: "DeploymentStatus with a rollout",
    file: "deployment_status_rollout",
    schema: DeploymentStatus,
  },
  {
    type: "RolloutActionRequest",
    file: "rollout_action_request",
    schema: RolloutActionRequest,
    flat: true,
  },
  // Its devices are [id, labels] pairs: labels are a record, any key there is a label.
  { type: "PopulationChunk", file: "population_chunk", schema: PopulationChunk, flat: true },
];

/** Paths (`a.b.0.c`) of object keys present in `future` but absent from `canonical`. */
function extraPaths(canonical: unknown, future: unknown, path: string[] = []): string[][] {
  if (Array.isArray(future)) {
    const base = Array.isArray(canonical) ? canonical : [];
    return future.flatMap((item, i) => extraPaths(base[i], item, [...path, String(i)]));
  }
  if (future === null || typeof future !== "object") return [];
  const base = canonical !== null && typeof canonical === "object" && !Array.isArray(canonical)
    ? canonical as Record<string, unknown>
    : undefined;
  return Object.entries(future as Record<string, unknown>).flatMap(([key, value]) =>
    base === undefined || !Object.hasOwn(base, key)
      ? [[...path, key]]
      : extraPaths(base[key], value, [...path, key])
  );
}

for (const { type, file, schema, normalize, flat } of CASES) {
  Deno.test(`${type} golden fixture ${file}.json round-trips exactly`, async () => {
    const golden = await readJson(`${file}.json`);
    const parsed = schema.parse(golden);
    assert.deepStrictEqual(JSON.parse(JSON.stringify(parsed)), golden);
  });

  Deno.test(`${type} golden fixture ${file}.json parses from bytes with parseJsonWith`, async () => {
    const bytes = await Deno.readFile(new URL(`${file}.json`, WIRE));
    const parsed = parseJsonWith(schema, bytes, type);
    assert.deepStrictEqual(parsed, schema.parse(await readJson(`${file}.json`)));
  });

  Deno.test(`${type} future fixture ${file}.future.json parses and equals the canonical one`, async () => {
    const canonical = schema.parse(await readJson(`${file}.json`));
    const future = schema.parse(await readJson(`${file}.future.json`));
    const norm = normalize ?? ((v: unknown) => v);
    assert.deepStrictEqual(norm(future), norm(canonical));
  });

  Deno.test(`${type} future fixture ${file}.future.json carries unknown fields at several depths`, async () => {
    const extras = extraPaths(
      await readJson(`${file}.json`),
      await readJson(`${file}.future.json`),
    );
    assert.ok(extras.some((p) => p.length === 1), `${file}.future.json: no top-level extra`);
    if (!flat) {
      assert.ok(extras.some((p) => p.length > 1), `${file}.future.json: no nested extra`);
    }
  });
}

Deno.test("DesiredState, Deployment and Score golden fixtures describe the same workload", async () => {
  const score = Score.parse(await readJson("score_podman_v0.json"));
  const desired = DesiredState.parse(await readJson("desired_state.json"));
  const deployment = Deployment.parse(await readJson("deployment.json"));
  assert.deepStrictEqual(resolveScore(desired.score), score);
  assert.deepStrictEqual(deployment.spec.score, score);
  assert.ok(deployment.metadata.generation !== undefined);
  assert.deepStrictEqual(desiredStateOf(deployment as StoredDeployment), desired);
});

Deno.test("Heartbeat JSON stays under 100 bytes for a 30-character device id, 128 for 63", () => {
  const size = (deviceId: string) => {
    const heartbeat = Heartbeat.parse({ deviceId, at: 9_999_999_999_999, instance: "k3v9q2xa" });
    return new TextEncoder().encode(JSON.stringify(heartbeat)).length;
  };
  assert.ok(size("d".repeat(30)) < 100, `heartbeat is ${size("d".repeat(30))} bytes`);
  assert.ok(size("d".repeat(63)) < 128, `heartbeat is ${size("d".repeat(63))} bytes`);
});

Deno.test("Heartbeat rejects a negative, fractional or string timestamp", () => {
  for (const at of [-1, 1.5, "1736936430000"]) {
    assert.equal(Heartbeat.safeParse({ deviceId: "dev-1", at }).success, false, String(at));
  }
});

Deno.test("DeploymentState defaults a missing lastError to null", () => {
  const state = DeploymentState.parse({
    deviceId: "dev-1",
    namespace: "default",
    deployment: "web",
    generation: 1,
    phase: "Running",
    lastEventAt: "2025-01-15T10:00:00.000Z",
  });
  assert.equal(state.lastError, null);
});

Deno.test("DeploymentState rejects an unknown phase", () => {
  const result = DeploymentState.safeParse({
    deviceId: "dev-1",
    namespace: "default",
    deployment: "web",
    generation: 1,
    phase: "Crashing",
    lastError: null,
    lastEventAt: "2025-01-15T10:00:00.000Z",
  });
  assert.equal(result.success, false);
});

Deno.test("DeploymentStatus defaults a missing aggregate.lastError to null", () => {
  const status = DeploymentStatus.parse({
    namespace: "default",
    name: "web",
    observedGeneration: 1,
    aggregate: { matchedDeviceCount: 0, succeeded: 0, failed: 0, pending: 0, unreachable: 0 },
    updatedAt: "2025-01-15T10:00:00.000Z",
  });
  assert.equal(status.aggregate.lastError, null);
});

Deno.test("DeviceInfo rejects an invalid device id and an invalid label, naming the value", () => {
  const base = {
    deviceId: "edge-1",
    labels: {},
    inventory: {
      hostname: "h",
      arch: "x86_64",
      os: "linux",
      kernel: "6.8",
      cpuCores: 2,
      memoryMb: 2048,
      agentVersion: "0.1.0",
    },
    updatedAt: "2025-01-15T10:00:00.000Z",
  };
  const badId = DeviceInfo.safeParse({ ...base, deviceId: "edge.1" });
  assert.equal(badId.success, false);
  assert.match(badId.error!.issues[0]!.message, /"edge\.1"/);
  const badKey = DeviceInfo.safeParse({ ...base, labels: { "has space": "x" } });
  assert.equal(badKey.success, false);
  assert.match(describeIssues(badKey.error!), /"has space"/);
  const longValue = DeviceInfo.safeParse({ ...base, labels: { env: "x".repeat(257) } });
  assert.equal(longValue.success, false);
  assert.match(describeIssues(longValue.error!), /at most 256 characters/);
});

Deno.test("DeviceInfo of an older agent with a free-text label value parses, and withSelectableLabels() keeps that label apart as not selectable", () => {
  // What agents before labels had to be Kubernetes label values published.
  const older = {
    deviceId: "edge-1",
    labels: { "fleet.nationtech.io/device-id": "edge-1", room: "Building 4, Room 12", env: "prod" },
    inventory: {
      hostname: "h",
      arch: "x86_64",
      os: "linux",
      kernel: "6.8",
      cpuCores: 2,
      memoryMb: 2048,
      agentVersion: "0.1.0",
    },
    updatedAt: "2025-01-15T10:00:00.000Z",
  };
  const parsed = DeviceInfo.parse(older);
  assert.equal(parsed.labels.room, "Building 4, Room 12");
  const view = withSelectableLabels(parsed);
  assert.deepStrictEqual(view.labels, { "fleet.nationtech.io/device-id": "edge-1", env: "prod" });
  assert.deepStrictEqual(view.unselectableLabels, { room: "Building 4, Room 12" });
  assert.deepStrictEqual(view.inventory, parsed.inventory);
});

// --- workloads ------------------------------------------------------------------------

function desiredWith(score: unknown): DesiredState {
  return DesiredState.parse({ namespace: "default", name: "web", generation: 1, score });
}

Deno.test("DesiredState with an unknown workload type parses, resolveScore throws WorkloadError naming it", () => {
  const desired = desiredWith({ type: "HelmV1", data: { chart: "oci://charts/web", values: {} } });
  assert.equal(desired.score.type, "HelmV1");
  assert.throws(
    () => resolveScore(desired.score),
    (e: unknown) => {
      assert.ok(e instanceof WorkloadError);
      assert.match(e.message, /unknown workload type "HelmV1"/);
      assert.match(e.message, /PodmanV0/);
      return true;
    },
  );
});

Deno.test("DesiredState without a score type is a wire error, not a workload error", () => {
  assert.equal(
    DesiredState.safeParse({ namespace: "default", name: "web", generation: 1, score: {} })
      .success,
    false,
  );
});

const MALFORMED: { what: string; data: unknown; field: RegExp; detail: RegExp }[] = [
  {
    what: "a service without an image",
    data: { services: [{ name: "web" }] },
    field: /services\[0\]\.image/,
    detail: /is required \(string\)/,
  },
  {
    what: "a service with an empty image",
    data: { services: [{ name: "web", image: "" }] },
    field: /services\[0\]\.image/,
    detail: /image is required/,
  },
  {
    what: 'port "80" without a host port',
    data: { services: [{ name: "web", image: "nginx", ports: ["8080:80", "80"] }] },
    field: /services\[0\]\.ports\[1\]/,
    detail: /port "80" must be "hostPort:containerPort"/,
  },
  {
    what: "port 0",
    data: { services: [{ name: "web", image: "nginx", ports: ["0:80"] }] },
    field: /services\[0\]\.ports\[0\]/,
    detail: /ports 1-65535/,
  },
  {
    what: "port 70000",
    data: { services: [{ name: "web", image: "nginx", ports: ["70000:80"] }] },
    field: /services\[0\]\.ports\[0\]/,
    detail: /ports 1-65535/,
  },
  {
    what: "duplicate service names",
    data: { services: [{ name: "web", image: "a" }, { name: "web", image: "b" }] },
    field: /services\[1\]\.name/,
    detail: /service name "web" is used twice/,
  },
  {
    what: "an unknown restartPolicy",
    data: { services: [{ name: "web", image: "nginx", restartPolicy: "sometimes" }] },
    field: /services\[0\]\.restartPolicy/,
    detail: /"unless-stopped"/,
  },
  {
    what: "an invalid service name",
    data: { services: [{ name: "Web_1", image: "nginx" }] },
    field: /services\[0\]\.name/,
    detail: /invalid service name "Web_1"/,
  },
  {
    what: "no services",
    data: { services: [] },
    field: /services/,
    detail: /at least one service is required/,
  },
  {
    what: "a relative hostPath",
    data: {
      services: [{
        name: "web",
        image: "nginx",
        volumes: [{ hostPath: "srv/web", containerPath: "/data" }],
      }],
    },
    field: /services\[0\]\.volumes\[0\]\.hostPath/,
    detail: /absolute path/,
  },
  {
    what: "a bad environment variable name",
    data: { services: [{ name: "web", image: "nginx", env: [{ name: "1X", value: "" }] }] },
    field: /services\[0\]\.env\[0\]\.name/,
    detail: /environment variable names/,
  },
  {
    what: "an image with whitespace",
    data: { services: [{ name: "web", image: "nginx latest" }] },
    field: /services\[0\]\.image/,
    detail: /whitespace/,
  },
];

for (const { what, data, field, detail } of MALFORMED) {
  Deno.test(`resolveScore() rejects a PodmanV0 with ${what} with a readable WorkloadError`, () => {
    const desired = desiredWith({ type: "PodmanV0", data });
    assert.throws(
      () => resolveScore(desired.score),
      (e: unknown) => {
        assert.ok(e instanceof WorkloadError, `not a WorkloadError: ${e}`);
        assert.match(e.message, /^invalid PodmanV0 workload: /);
        assert.match(e.message, field);
        assert.match(e.message, detail);
        return true;
      },
    );
  });
}

Deno.test("resolveScore() fills PodmanV0 defaults", () => {
  const score = resolveScore({ type: "PodmanV0", data: { services: [{ name: "a", image: "b" }] } });
  assert.deepStrictEqual(score, {
    type: "PodmanV0",
    data: {
      services: [{
        name: "a",
        image: "b",
        ports: [],
        env: [],
        volumes: [],
        restartPolicy: "unless-stopped",
      }],
    },
  });
});

// --- Deployment objects ---------------------------------------------------------------

Deno.test("Deployment parses fixtures/deployments/web.yaml as a user would apply it", async () => {
  const text = await Deno.readTextFile(new URL("web.yaml", DEPLOYMENTS));
  const deployment = Deployment.parse(YAML.parse(text));
  assert.equal(deployment.apiVersion, "fleet.nationtech.io/v1alpha1");
  assert.equal(deployment.kind, "Deployment");
  assert.deepStrictEqual(deployment.metadata, { name: "web", namespace: "retail" });
  assert.deepStrictEqual(deployment.spec.targetSelector, {
    matchLabels: { env: "prod" },
    matchExpressions: [{ key: "tier", operator: "In", values: ["edge", "core"] }],
  });
  assert.deepStrictEqual(deployment.spec.rollout, { strategy: "Immediate" });
  const [web, ...rest] = deployment.spec.score.data.services;
  assert.equal(rest.length, 0);
  assert.deepStrictEqual(web, {
    name: "web",
    image: "docker.io/library/nginx:1.27",
    ports: ["8080:80", "8053:53/udp"],
    env: [{ name: "NGINX_HOST", value: "shop.example.com" }],
    volumes: [{ hostPath: "/srv/web", containerPath: "/usr/share/nginx/html", readOnly: true }],
    restartPolicy: "unless-stopped",
  });
});

function minimalDeployment(): Record<string, unknown> {
  return {
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Deployment",
    metadata: { name: "web" },
    spec: {
      targetSelector: {},
      score: { type: "PodmanV0", data: { services: [{ name: "web", image: "nginx" }] } },
    },
  };
}

Deno.test("Deployment defaults the namespace to default and the rollout to Immediate", () => {
  const deployment = Deployment.parse(minimalDeployment());
  assert.equal(deployment.metadata.namespace, "default");
  assert.deepStrictEqual(deployment.spec.rollout, { strategy: "Immediate" });
});

Deno.test("Deployment rejects a wrong apiVersion or kind", () => {
  assert.equal(
    Deployment.safeParse({ ...minimalDeployment(), apiVersion: "fleet.nationtech.io/v1" }).success,
    false,
  );
  assert.equal(Deployment.safeParse({ ...minimalDeployment(), kind: "Device" }).success, false);
});

Deno.test("Deployment rejects an invalid name, naming the value and the rule", () => {
  const result = Deployment.safeParse({ ...minimalDeployment(), metadata: { name: "Web.v2" } });
  assert.equal(result.success, false);
  const issue = result.error!.issues[0]!;
  assert.deepStrictEqual(issue.path, ["metadata", "name"]);
  assert.match(issue.message, /"Web\.v2"/);
  assert.match(issue.message, /RFC 1123/);
});

Deno.test("Deployment rejects an unknown workload type (only DesiredState carries it opaquely)", () => {
  const input = minimalDeployment();
  input.spec = { targetSelector: {}, score: { type: "HelmV1", data: {} } };
  assert.equal(Deployment.safeParse(input).success, false);
});

Deno.test("Deployment rejects an unknown rollout strategy", () => {
  const input = minimalDeployment();
  input.spec = { ...(input.spec as object), rollout: { strategy: "Canary" } };
  assert.equal(Deployment.safeParse(input).success, false);
});
