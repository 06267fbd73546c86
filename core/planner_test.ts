import assert from "node:assert/strict";
import { type DeploymentRef, refKey } from "./keys.ts";
import {
  type Action,
  ContainerLabels,
  containerLabels,
  containerName,
  type DesiredEntry,
  MANAGED_BY,
  type ObservedContainer,
  type Plan,
  plan,
  serviceHash,
} from "./planner.ts";
import { PodmanService } from "./score.ts";

const DEVICE = "dev-1";
const WEB: DeploymentRef = { namespace: "default", name: "web" };

type RunnableEntry = Extract<DesiredEntry, { score: unknown }>;

/** A validated service with its defaults filled, as resolveScore would give it. */
function service(name: string, fields: Record<string, unknown> = {}): PodmanService {
  return PodmanService.parse({ name, image: `registry.local/${name}:1`, ...fields });
}

function entry(
  ref: DeploymentRef,
  services: PodmanService[],
  generation = 1,
): RunnableEntry {
  return { ref, generation, score: { type: "PodmanV0", data: { services } } };
}

function desiredOf(...entries: DesiredEntry[]): Map<string, DesiredEntry> {
  return new Map(entries.map((e) => [refKey(e.ref), e]));
}

interface ObserveOptions {
  state?: string;
  exitCode?: number;
  id?: string;
  deviceId?: string;
  labels?: Record<string, string>;
}

/** The container the agent would have created for `serviceName` of `desired`. */
function observe(
  desired: RunnableEntry,
  serviceName: string,
  options: ObserveOptions = {},
): ObservedContainer {
  const svc = desired.score.data.services.find((s) => s.name === serviceName);
  if (!svc) throw new Error(`no service ${serviceName}`);
  const name = containerName(options.deviceId ?? DEVICE, desired.ref, svc.name);
  return {
    id: options.id ?? `id-${name}`,
    name,
    labels: {
      ...containerLabels(options.deviceId ?? DEVICE, desired.ref, desired.generation, svc),
      ...options.labels,
    },
    state: options.state ?? "running",
    exitCode: options.exitCode ?? 0,
  };
}

/** Running containers for every service of every entry. */
function observeAll(...entries: RunnableEntry[]): ObservedContainer[] {
  return entries.flatMap((e) => e.score.data.services.map((s) => observe(e, s.name)));
}

function run(
  desired: Map<string, DesiredEntry>,
  observed: ObservedContainer[],
  retained: string[] = [],
): Plan {
  return plan({ deviceId: DEVICE, desired, observed, retained: new Set(retained) });
}

/** `kind containerName` for each action, in order. */
function summary(actions: readonly Action[]): string[] {
  return actions.map((a) => `${a.kind} ${a.containerName}`);
}

/** Applies a plan the way the podman adapter would, for convergence tests. */
function apply(observed: ObservedContainer[], p: Plan): ObservedContainer[] {
  let next = [...observed];
  let n = 0;
  for (const action of p.actions) {
    switch (action.kind) {
      case "remove":
        next = next.filter((c) => c.id !== action.containerId);
        break;
      case "start":
        next = next.map((c) => c.id === action.containerId ? { ...c, state: "running" } : c);
        break;
      case "create":
        assert.ok(!next.some((c) => c.name === action.containerName), "name still in use");
        next.push({
          id: `new-${n++}`,
          name: action.containerName,
          labels: action.labels,
          state: "running",
          exitCode: 0,
        });
        break;
    }
  }
  return next;
}

const NAME_WEB = containerName(DEVICE, WEB, "web");
const NAME_DB = containerName(DEVICE, WEB, "db");

// --- creating and steady state --------------------------------------------------------

Deno.test("plan() creates every service when nothing is observed, phase Pending", () => {
  const web = service("web", { ports: ["8080:80"] });
  const db = service("db");
  const desired = entry(WEB, [web, db], 4);
  const p = run(desiredOf(desired), []);
  assert.deepStrictEqual(summary(p.actions), [`create ${NAME_WEB}`, `create ${NAME_DB}`]);
  const [createWeb] = p.actions;
  assert.ok(createWeb?.kind === "create");
  assert.deepStrictEqual(createWeb.ref, WEB);
  assert.deepStrictEqual(createWeb.service, web);
  assert.deepStrictEqual(createWeb.labels, containerLabels(DEVICE, WEB, 4, web));
  assert.match(createWeb.reason, /service web is not running/);
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 4, phase: "Pending", error: null },
  ]);
});

Deno.test("plan() is a no-op when every service runs with its current spec hash", () => {
  const desired = entry(WEB, [service("web"), service("db")]);
  const p = run(desiredOf(desired), observeAll(desired));
  assert.deepStrictEqual(p.actions, []);
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 1, phase: "Running", error: null },
  ]);
});

Deno.test("plan() converges in one tick and is then a no-op (agent restart included)", () => {
  const a = entry(WEB, [service("web"), service("db")]);
  const b = entry({ namespace: "ops", name: "metrics" }, [service("exporter")]);
  const desired = desiredOf(a, b);
  let observed = apply([], run(desired, []));
  const second = run(desired, observed);
  assert.deepStrictEqual(second.actions, []);
  assert.ok(second.assessments.every((s) => s.phase === "Running"));
  // A new plan over the same observation (a restarted agent) changes nothing either.
  observed = apply(observed, second);
  assert.deepStrictEqual(run(desired, observed).actions, []);
});

Deno.test("plan() labels created containers with managed-by, device, deployment, service, hash and generation", () => {
  const web = service("web");
  const labels = containerLabels(DEVICE, WEB, 7, web);
  assert.deepStrictEqual(labels, {
    [ContainerLabels.managedBy]: MANAGED_BY,
    [ContainerLabels.deviceId]: DEVICE,
    [ContainerLabels.namespace]: "default",
    [ContainerLabels.deployment]: "web",
    [ContainerLabels.service]: "web",
    [ContainerLabels.specHash]: serviceHash(WEB, web),
    [ContainerLabels.generation]: "7",
  });
  assert.equal(labels[ContainerLabels.managedBy], "fleet-agent");
  assert.equal(ContainerLabels.managedBy, "fleet.nationtech.io/managed-by");
});

Deno.test("containerName() joins device, namespace, deployment and service with '_'", () => {
  assert.equal(
    containerName("dev-1", { namespace: "ns", name: "app" }, "svc"),
    "fleet_dev-1_ns_app_svc",
  );
  // '_' cannot occur in DNS labels, so different identities never give the same name.
  assert.notEqual(
    containerName("d", { namespace: "a-b", name: "c" }, "d"),
    containerName("d", { namespace: "a", name: "b-c" }, "d"),
  );
  assert.notEqual(
    containerName("dev-1", WEB, "web"),
    containerName("dev-2", WEB, "web"),
  );
});

// --- spec changes ---------------------------------------------------------------------

Deno.test("plan() recreates a service whose spec hash changed", () => {
  const before = entry(WEB, [service("web", { image: "nginx:1.26" }), service("db")]);
  const after = entry(WEB, [service("web", { image: "nginx:1.27" }), service("db")], 2);
  const observed = observeAll(before);
  const p = run(desiredOf(after), observed);
  assert.deepStrictEqual(summary(p.actions), [`remove ${NAME_WEB}`, `create ${NAME_WEB}`]);
  const [remove, create] = p.actions;
  assert.ok(remove?.kind === "remove" && create?.kind === "create");
  assert.equal(remove.containerId, `id-${NAME_WEB}`);
  assert.deepStrictEqual(remove.ref, WEB);
  assert.match(remove.reason, /service web changed/);
  assert.match(create.reason, /service web changed/);
  assert.equal(create.service.image, "nginx:1.27");
  assert.equal(create.labels[ContainerLabels.generation], "2");
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 2, phase: "Pending", error: null },
  ]);
});

Deno.test("plan() recreates a service when any part of its spec changes", () => {
  const base = { ports: ["8080:80"], env: [{ name: "A", value: "1" }] };
  const variants: Record<string, unknown>[] = [
    { ports: ["8081:80"] },
    { env: [{ name: "A", value: "2" }] },
    { volumes: [{ hostPath: "/srv", containerPath: "/data" }] },
    { restartPolicy: "always" },
    { command: ["/bin/sh"] },
    { args: ["-v"] },
  ];
  const before = entry(WEB, [service("web", base)]);
  for (const change of variants) {
    const after = entry(WEB, [service("web", { ...base, ...change })]);
    const p = run(desiredOf(after), observeAll(before));
    assert.deepStrictEqual(
      summary(p.actions),
      [`remove ${NAME_WEB}`, `create ${NAME_WEB}`],
      JSON.stringify(change),
    );
  }
});

Deno.test("plan() orders every removal before every create", () => {
  const before = entry(WEB, [service("a"), service("b"), service("c")]);
  const after = entry(WEB, [
    service("a", { image: "new" }),
    service("b"),
    service("c", { image: "new" }),
    service("d"),
  ]);
  const gone = entry({ namespace: "default", name: "old" }, [service("x")]);
  const p = run(desiredOf(after), [...observeAll(before, gone)]);
  const kinds = p.actions.map((a) => a.kind);
  assert.deepStrictEqual(kinds, ["remove", "remove", "remove", "create", "create", "create"]);
  const lastRemove = kinds.lastIndexOf("remove");
  const firstCreate = kinds.indexOf("create");
  assert.ok(lastRemove < firstCreate);
});

Deno.test("plan() ignores a generation bump when the spec is unchanged", () => {
  const v1 = entry(WEB, [service("web"), service("db")], 1);
  const v2 = entry(WEB, [service("web"), service("db")], 2);
  const p = run(desiredOf(v2), observeAll(v1));
  assert.deepStrictEqual(p.actions, []);
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 2, phase: "Running", error: null },
  ]);
});

Deno.test("plan() removes the container of a service dropped from the deployment", () => {
  const before = entry(WEB, [service("web"), service("db")]);
  const after = entry(WEB, [service("web")], 2);
  const p = run(desiredOf(after), observeAll(before));
  assert.deepStrictEqual(summary(p.actions), [`remove ${NAME_DB}`]);
  const [remove] = p.actions;
  assert.ok(remove?.kind === "remove");
  assert.deepStrictEqual(remove.ref, WEB);
  assert.match(remove.reason, /service db is no longer part of the deployment/);
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 2, phase: "Running", error: null },
  ]);
});

Deno.test("plan() removes a managed container of a desired deployment that has no service label", () => {
  const desired = entry(WEB, [service("web")]);
  const stray = observe(desired, "web", { id: "stray" });
  const labels = { ...stray.labels };
  delete labels[ContainerLabels.service];
  const p = run(desiredOf(desired), [observe(desired, "web"), { ...stray, labels }]);
  assert.deepStrictEqual(p.actions.map((a) => a.kind === "remove" && a.containerId), ["stray"]);
});

Deno.test("plan() removes one of two containers with the same spec hash", () => {
  const desired = entry(WEB, [service("web")]);
  const first = observe(desired, "web", { id: "c1" });
  const second = { ...observe(desired, "web", { id: "c2" }), name: `${NAME_WEB}-dup` };
  const p = run(desiredOf(desired), [first, second]);
  assert.equal(p.actions.length, 1);
  const [remove] = p.actions;
  assert.ok(remove?.kind === "remove");
  assert.ok(["c1", "c2"].includes(remove.containerId));
  assert.match(remove.reason, /duplicate container/);
  assert.deepStrictEqual(p.assessments[0]?.phase, "Running");
});

Deno.test("plan() removes an outdated container even when a current one already runs", () => {
  const old = entry(WEB, [service("web", { image: "old" })]);
  const current = entry(WEB, [service("web")]);
  const p = run(desiredOf(current), [
    observe(old, "web", { id: "old" }),
    observe(current, "web", { id: "new" }),
  ]);
  assert.deepStrictEqual(p.actions.map((a) => a.kind === "remove" && a.containerId), ["old"]);
  assert.equal(p.assessments[0]?.phase, "Running");
});

// --- container states -----------------------------------------------------------------

for (const state of ["created", "configured", "initialized"]) {
  Deno.test(`plan() starts a container in the ${state} state, phase Pending`, () => {
    const desired = entry(WEB, [service("web")]);
    const p = run(desiredOf(desired), [observe(desired, "web", { state })]);
    assert.deepStrictEqual(summary(p.actions), [`start ${NAME_WEB}`]);
    const [start] = p.actions;
    assert.ok(start?.kind === "start");
    assert.equal(start.containerId, `id-${NAME_WEB}`);
    assert.deepStrictEqual(start.ref, WEB);
    assert.equal(p.assessments[0]?.phase, "Pending");
  });
}

for (const restartPolicy of ["unless-stopped", "always"]) {
  Deno.test(`plan() recreates an exited container under restartPolicy ${restartPolicy}`, () => {
    const desired = entry(WEB, [service("web", { restartPolicy })]);
    const clean = run(desiredOf(desired), [observe(desired, "web", { state: "exited" })]);
    assert.deepStrictEqual(summary(clean.actions), [`remove ${NAME_WEB}`, `create ${NAME_WEB}`]);
    assert.deepStrictEqual(clean.assessments, [
      { ref: WEB, generation: 1, phase: "Pending", error: null },
    ]);

    const crashed = run(desiredOf(desired), [
      observe(desired, "web", { state: "exited", exitCode: 137 }),
    ]);
    assert.deepStrictEqual(summary(crashed.actions), [
      `remove ${NAME_WEB}`,
      `create ${NAME_WEB}`,
    ]);
    // One exit is no failure yet (a crash loop is, judged by the agent's service health).
    const [assessment] = crashed.assessments;
    assert.equal(assessment?.phase, "Pending");
    assert.match(assessment?.error ?? "", /service web exited with code 137; restarting it/);
    assert.equal(crashed.services[0]?.condition, "exited");
  });
}

Deno.test('plan() leaves an exited container alone under restartPolicy "no"', () => {
  const desired = entry(WEB, [service("web", { restartPolicy: "no" })]);
  const done = run(desiredOf(desired), [observe(desired, "web", { state: "exited" })]);
  assert.deepStrictEqual(done.actions, []);
  assert.deepStrictEqual(done.assessments, [
    { ref: WEB, generation: 1, phase: "Running", error: null },
  ]);

  const failed = run(desiredOf(desired), [
    observe(desired, "web", { state: "exited", exitCode: 1 }),
  ]);
  assert.deepStrictEqual(failed.actions, []);
  assert.equal(failed.assessments[0]?.phase, "Failed");
  assert.match(failed.assessments[0]?.error ?? "", /service web exited with code 1\b/);
});

Deno.test('plan() restarts only a failed container under restartPolicy "on-failure"', () => {
  const desired = entry(WEB, [service("web", { restartPolicy: "on-failure" })]);
  const done = run(desiredOf(desired), [observe(desired, "web", { state: "exited" })]);
  assert.deepStrictEqual(done.actions, []);
  assert.equal(done.assessments[0]?.phase, "Running");

  const failed = run(desiredOf(desired), [
    observe(desired, "web", { state: "exited", exitCode: 2 }),
  ]);
  assert.deepStrictEqual(summary(failed.actions), [`remove ${NAME_WEB}`, `create ${NAME_WEB}`]);
  assert.equal(failed.assessments[0]?.phase, "Pending");
  assert.match(failed.assessments[0]?.error ?? "", /exited with code 2/);
});

Deno.test("plan() says for each service of each runnable deployment what it made of its container", () => {
  const desired = entry(WEB, [
    service("web"),
    service("db"),
    service("job", { restartPolicy: "no" }),
    service("batch", { restartPolicy: "on-failure" }),
    service("init"),
    service("cache"),
    service("crashed"),
  ]);
  const p = run(
    desiredOf(desired, { ref: { namespace: "default", name: "bad" }, generation: 2, error: "x" }),
    [
      observe(desired, "web"),
      observe(desired, "job", { state: "exited" }),
      observe(desired, "batch", { state: "exited", exitCode: 4 }),
      observe(desired, "init", { state: "created" }),
      observe(desired, "cache", { state: "stopping" }),
      observe(desired, "crashed", { state: "stopped", exitCode: 1 }),
    ],
  );
  assert.deepStrictEqual(
    p.services.map((s) => [s.service.name, s.condition, s.container?.id ?? null]),
    [
      ["web", "running", `id-${NAME_WEB}`],
      ["db", "missing", null],
      ["job", "finished", `id-${containerName(DEVICE, WEB, "job")}`],
      ["batch", "exited", `id-${containerName(DEVICE, WEB, "batch")}`],
      ["init", "starting", `id-${containerName(DEVICE, WEB, "init")}`],
      ["cache", "transient", `id-${containerName(DEVICE, WEB, "cache")}`],
      ["crashed", "exited", `id-${containerName(DEVICE, WEB, "crashed")}`],
    ],
  );
  assert.ok(p.services.every((s) => s.generation === 1 && s.ref === WEB));
  assert.equal(p.services[0]?.hash, serviceHash(WEB, desired.score.data.services[0]!));

  const failedJob = run(desiredOf(entry(WEB, [service("job", { restartPolicy: "no" })])), [
    observe(entry(WEB, [service("job", { restartPolicy: "no" })]), "job", {
      state: "exited",
      exitCode: 1,
    }),
  ]);
  assert.equal(failedJob.services[0]?.condition, "failed");
});

for (const state of ["stopped", "dead", "unknown-future-state"]) {
  Deno.test(`plan() treats a container in the ${state} state like an exited one`, () => {
    const desired = entry(WEB, [service("web")]);
    const p = run(desiredOf(desired), [observe(desired, "web", { state, exitCode: 0 })]);
    assert.deepStrictEqual(summary(p.actions), [`remove ${NAME_WEB}`, `create ${NAME_WEB}`]);
  });
}

for (const state of ["stopping", "restarting", "removing", "paused"]) {
  Deno.test(`plan() waits on a container in the transient ${state} state, phase Pending`, () => {
    const desired = entry(WEB, [service("web")]);
    const p = run(desiredOf(desired), [observe(desired, "web", { state, exitCode: 1 })]);
    assert.deepStrictEqual(p.actions, []);
    assert.deepStrictEqual(p.assessments, [
      { ref: WEB, generation: 1, phase: "Pending", error: null },
    ]);
  });
}

Deno.test("plan() keeps Failed when a later service of the same deployment is only Pending", () => {
  const desired = entry(WEB, [service("web", { restartPolicy: "no" }), service("db")]);
  const p = run(desiredOf(desired), [observe(desired, "web", { state: "exited", exitCode: 3 })]);
  assert.deepStrictEqual(summary(p.actions), [`create ${NAME_DB}`]);
  assert.equal(p.assessments[0]?.phase, "Failed");
  assert.match(p.assessments[0]?.error ?? "", /service web exited with code 3/);
});

Deno.test("plan() keeps Failed when an earlier service is only Pending", () => {
  const desired = entry(WEB, [service("db"), service("web", { restartPolicy: "no" })]);
  const p = run(desiredOf(desired), [observe(desired, "web", { state: "exited", exitCode: 3 })]);
  assert.deepStrictEqual(summary(p.actions), [`create ${NAME_DB}`]);
  assert.equal(p.assessments[0]?.phase, "Failed");
});

Deno.test("plan() reports Pending while one of two services is still missing", () => {
  const desired = entry(WEB, [service("web"), service("db")]);
  const p = run(desiredOf(desired), [observe(desired, "web")]);
  assert.deepStrictEqual(summary(p.actions), [`create ${NAME_DB}`]);
  assert.equal(p.assessments[0]?.phase, "Pending");
});

// --- what is never touched ------------------------------------------------------------

Deno.test("plan() never touches containers without the managed-by label", () => {
  const desired = entry(WEB, [service("web")]);
  const mine = observe(desired, "web");
  const unlabelled: ObservedContainer = {
    id: "foreign",
    name: "postgres",
    labels: {},
    state: "exited",
    exitCode: 1,
  };
  const otherManager = observe(desired, "web", {
    id: "other-manager",
    labels: { [ContainerLabels.managedBy]: "someone-else" },
  });
  const noManager = { ...observe(desired, "web", { id: "no-manager" }), labels: {} };
  for (const desiredMap of [desiredOf(desired), desiredOf()]) {
    const p = run(desiredMap, [mine, unlabelled, otherManager, noManager]);
    const touched = p.actions.flatMap((a) => a.kind === "create" ? [] : [a.containerId]);
    assert.ok(!touched.includes("foreign"));
    assert.ok(!touched.includes("other-manager"));
    assert.ok(!touched.includes("no-manager"));
  }
});

Deno.test("plan() never touches managed containers of another device", () => {
  const desired = entry(WEB, [service("web")]);
  const other = observe(desired, "web", { id: "theirs", deviceId: "dev-2", state: "exited" });
  const orphan = observe(entry({ namespace: "default", name: "gone" }, [service("x")]), "x", {
    id: "their-orphan",
    deviceId: "dev-2",
  });
  const p = run(desiredOf(desired), [observe(desired, "web"), other, orphan]);
  assert.deepStrictEqual(p.actions, []);
  const none = run(desiredOf(), [other, orphan]);
  assert.deepStrictEqual(none.actions, []);
});

Deno.test("plan() never touches managed containers without namespace or deployment labels", () => {
  const desired = entry(WEB, [service("web")]);
  const c = observe(desired, "web", { id: "half" });
  for (const label of [ContainerLabels.namespace, ContainerLabels.deployment]) {
    const labels = { ...c.labels };
    delete labels[label];
    const p = run(desiredOf(), [{ ...c, labels }]);
    assert.deepStrictEqual(p.actions, [], label);
  }
});

// --- deployments that go away ---------------------------------------------------------

Deno.test("plan() removes every container of a deployment no longer desired", () => {
  const gone = entry(WEB, [service("web"), service("db")]);
  const p = run(desiredOf(), observeAll(gone));
  assert.deepStrictEqual(summary(p.actions), [`remove ${NAME_WEB}`, `remove ${NAME_DB}`]);
  for (const action of p.actions) {
    assert.ok(action.kind === "remove");
    assert.deepStrictEqual(action.ref, WEB);
    assert.match(action.reason, /no longer assigned to this device/);
  }
  assert.deepStrictEqual(p.assessments, []);
});

Deno.test("plan() leaves the containers of a retained deployment untouched", () => {
  const gone = entry(WEB, [service("web"), service("db")]);
  const observed = [
    ...observeAll(gone),
    observe(gone, "web", { id: "exited", state: "exited", exitCode: 1 }),
  ];
  const p = run(desiredOf(), observed, [refKey(WEB)]);
  assert.deepStrictEqual(p.actions, []);
  assert.deepStrictEqual(p.assessments, [], "no assessment for a deployment not desired");
});

Deno.test("plan() reports an unrunnable desired entry as Failed and keeps its containers", () => {
  const running = entry(WEB, [service("web"), service("db")]);
  const broken: DesiredEntry = {
    ref: WEB,
    generation: 5,
    error: 'unknown workload type "HelmV1"; this agent runs PodmanV0',
  };
  const observed = [
    ...observeAll(running),
    observe(running, "web", { id: "exited", state: "exited", exitCode: 1 }),
  ];
  const p = run(desiredOf(broken), observed);
  assert.deepStrictEqual(p.actions, []);
  assert.deepStrictEqual(p.assessments, [
    { ref: WEB, generation: 5, phase: "Failed", error: broken.error },
  ]);
});

Deno.test("plan() gives one assessment per desired deployment, in desired order", () => {
  const a = entry({ namespace: "default", name: "a" }, [service("x")]);
  const b: DesiredEntry = { ref: { namespace: "default", name: "b" }, generation: 1, error: "no" };
  const c = entry({ namespace: "other", name: "c" }, [service("y")], 3);
  const p = run(desiredOf(a, b, c), observeAll(a));
  assert.deepStrictEqual(
    p.assessments.map((s) => [refKey(s.ref), s.generation, s.phase]),
    [["default.a", 1, "Running"], ["default.b", 1, "Failed"], ["other.c", 3, "Pending"]],
  );
});

// --- namespaces -----------------------------------------------------------------------

Deno.test("plan() keeps two namespaces with the same deployment name independent", () => {
  const teamA = entry({ namespace: "team-a", name: "web" }, [service("web")]);
  const teamB = entry({ namespace: "team-b", name: "web" }, [service("web")]);
  assert.notEqual(containerName(DEVICE, teamA.ref, "web"), containerName(DEVICE, teamB.ref, "web"));
  assert.notEqual(
    serviceHash(teamA.ref, service("web")),
    serviceHash(teamB.ref, service("web")),
  );

  // Only team-a runs: team-b gets created, team-a is left alone.
  const both = run(desiredOf(teamA, teamB), observeAll(teamA));
  assert.deepStrictEqual(summary(both.actions), ["create fleet_dev-1_team-b_web_web"]);
  assert.deepStrictEqual(both.assessments.map((s) => [s.ref.namespace, s.phase]), [
    ["team-a", "Running"],
    ["team-b", "Pending"],
  ]);

  // team-b is deleted: only its container goes.
  const onlyA = run(desiredOf(teamA), observeAll(teamA, teamB));
  assert.deepStrictEqual(summary(onlyA.actions), ["remove fleet_dev-1_team-b_web_web"]);

  // team-b's change does not recreate team-a.
  const teamB2 = entry(teamB.ref, [service("web", { image: "v2" })]);
  const changed = run(desiredOf(teamA, teamB2), observeAll(teamA, teamB));
  assert.deepStrictEqual(summary(changed.actions), [
    "remove fleet_dev-1_team-b_web_web",
    "create fleet_dev-1_team-b_web_web",
  ]);
});

// --- serviceHash ----------------------------------------------------------------------

Deno.test("serviceHash() is stable across key order", () => {
  const a = service("web", {
    image: "nginx",
    ports: ["80:80"],
    env: [{ name: "A", value: "1" }],
    volumes: [{ hostPath: "/a", containerPath: "/b", readOnly: true }],
  });
  const b = {
    volumes: [{ readOnly: true, containerPath: "/b", hostPath: "/a" }],
    restartPolicy: a.restartPolicy,
    env: [{ value: "1", name: "A" }],
    ports: ["80:80"],
    image: "nginx",
    name: "web",
  } satisfies PodmanService;
  assert.equal(serviceHash(WEB, a), serviceHash(WEB, b));
  assert.equal(serviceHash({ name: "web", namespace: "default" }, a), serviceHash(WEB, a));
});

Deno.test("serviceHash() depends on the deployment identity and the spec, not the generation", () => {
  const web = service("web");
  const h = serviceHash(WEB, web);
  assert.match(h, /^[0-9a-f]{16}$/);
  assert.notEqual(serviceHash({ namespace: "other", name: "web" }, web), h);
  assert.notEqual(serviceHash({ namespace: "default", name: "other" }, web), h);
  assert.notEqual(serviceHash(WEB, service("web", { image: "x" })), h);
  assert.equal(
    containerLabels(DEVICE, WEB, 1, web)[ContainerLabels.specHash],
    containerLabels(DEVICE, WEB, 99, web)[ContainerLabels.specHash],
  );
});

Deno.test("serviceHash() treats explicit defaults and filled defaults the same", () => {
  // The agent hashes resolved services, so a spec that spells out the defaults is no change.
  const implicit = service("web");
  const explicit = service("web", {
    ports: [],
    env: [],
    volumes: [],
    restartPolicy: "unless-stopped",
  });
  assert.equal(serviceHash(WEB, implicit), serviceHash(WEB, explicit));
});
