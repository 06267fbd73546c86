import assert from "node:assert/strict";
import {
  auditArguments,
  logSources,
  LogsRequest,
  parseCommandSubject,
  ReplyMemo,
  RestartRequest,
  selectedContainers,
  sinceSeconds,
} from "./device_commands.ts";
import { MIN_CREDIT } from "./device_sessions.ts";
import { ContainerLabels, type ObservedContainer } from "./planner.ts";
import { commandSubject } from "./keys.ts";

Deno.test("parseCommandSubject() reads the verb and the principal of the device's own subject", () => {
  assert.deepEqual(parseCommandSubject(commandSubject("pi-1", "ping", "bob-1f"), "pi-1"), {
    verb: "ping",
    principal: "bob-1f",
  });
});

Deno.test("parseCommandSubject() names the problem of a subject it does not answer", () => {
  const problem = (subject: string) => {
    const parsed = parseCommandSubject(subject, "pi-1");
    return "problem" in parsed ? parsed.problem : undefined;
  };
  assert.match(problem("device-commands.pi-2.ping.bob")!, /not a command subject of this device/);
  assert.match(problem("device-commands.pi-1.ping")!, /<verb>\.<principal>/);
  assert.match(problem("device-commands.pi-1.ping.bob.extra")!, /not a command subject/);
  assert.match(problem("device-commands.pi-1.ping.Bob")!, /invalid principal/);
  assert.match(
    problem("device-commands.pi-1.upgrade.bob")!,
    /unknown verb "upgrade": this agent answers ping, diag, restart, reconcile, logs, exec/,
  );
  const unknown = parseCommandSubject("device-commands.pi-1.upgrade.bob", "pi-1");
  assert.equal("principal" in unknown && unknown.principal, "bob");
});

function container(id: string, deployment: string, service: string, ns = "default") {
  return {
    id,
    name: `${ns}-${deployment}-${service}`,
    labels: {
      [ContainerLabels.namespace]: ns,
      [ContainerLabels.deployment]: deployment,
      [ContainerLabels.service]: service,
    },
    state: "running",
    exitCode: 0,
  } satisfies ObservedContainer;
}

const OBSERVED = [
  container("c3", "web", "db"),
  container("c1", "web", "app"),
  container("c2", "web", "app", "shop"),
  container("c4", "metrics", "agent"),
];

Deno.test("selectedContainers() picks a deployment's containers in its namespace, in service order", () => {
  const request = RestartRequest.parse({
    requestId: "r1",
    namespace: "default",
    deployment: "web",
  });
  assert.deepEqual(selectedContainers(OBSERVED, request), {
    containers: [{ service: "app", containerId: "c1" }, { service: "db", containerId: "c3" }],
  });
  assert.deepEqual(selectedContainers(OBSERVED, { ...request, service: "db" }), {
    containers: [{ service: "db", containerId: "c3" }],
  });
});

Deno.test("selectedContainers() names what was asked when nothing matches", () => {
  const request = RestartRequest.parse({
    requestId: "r1",
    namespace: "default",
    deployment: "web",
  });
  assert.deepEqual(selectedContainers(OBSERVED, { ...request, deployment: "wbe" }), {
    problem: `no container of deployment "wbe" in namespace "default" runs on this device`,
  });
  assert.deepEqual(selectedContainers(OBSERVED, { ...request, service: "cache" }), {
    problem: `deployment "web" in namespace "default" has no service "cache" here; it has db, app`,
  });
});

Deno.test("RestartRequest refuses a wildcard or dotted name, naming the rule", () => {
  const result = RestartRequest.safeParse({
    requestId: "r1",
    namespace: "default",
    deployment: "*",
  });
  assert.equal(result.success, false);
  assert.equal(
    RestartRequest.safeParse({ requestId: "a b", namespace: "x", deployment: "y" }).success,
    false,
  );
});

Deno.test("ReplyMemo answers a repeated key with the first reply, and runs the work once", async () => {
  const memo = new ReplyMemo<number>();
  let runs = 0;
  const work = () => Promise.resolve(++runs);
  const first = memo.reply("r1", 0, work);
  const again = memo.reply("r1", 1_000, work);
  assert.equal(first.first, true);
  assert.equal(again.first, false);
  assert.equal(await again.reply, 1);
  assert.equal(runs, 1);
  assert.equal(await memo.reply("r2", 1_000, work).reply, 2);
});

Deno.test("ReplyMemo forgets keys after their time and the oldest beyond its size", async () => {
  const memo = new ReplyMemo<string>(2, 60_000);
  const answer = (v: string) => () => Promise.resolve(v);
  memo.reply("a", 0, answer("a1"));
  assert.equal(await memo.reply("a", 60_001, answer("a2")).reply, "a2");
  memo.reply("b", 60_002, answer("b1"));
  memo.reply("c", 60_003, answer("c1"));
  assert.equal(await memo.reply("a", 60_004, answer("a3")).reply, "a3");
  assert.equal(await memo.reply("c", 60_005, answer("c2")).reply, "c1");
});

Deno.test("auditArguments() keeps only identifier arguments, never other fields", () => {
  assert.deepEqual(
    auditArguments({
      requestId: "r1",
      namespace: "default",
      deployment: "web",
      service: "app",
      password: "hunter2",
    }),
    { namespace: "default", deployment: "web", service: "app" },
  );
  assert.deepEqual(auditArguments({ deployment: "a.b*" }), {});
  assert.deepEqual(auditArguments("text"), {});
});

const LOGS = LogsRequest.parse({
  requestId: "r1",
  sessionId: "abcdef0123456789",
  namespace: "default",
  deployment: "web",
  credit: MIN_CREDIT,
});

Deno.test("logSources() selects the deployment's containers, or one service's", () => {
  assert.deepEqual(logSources(OBSERVED, LOGS), {
    containers: [{ service: "app", containerId: "c1" }, { service: "db", containerId: "c3" }],
  });
  assert.deepEqual(logSources(OBSERVED, { ...LOGS, service: "db" }), {
    containers: [{ service: "db", containerId: "c3" }],
  });
  assert.deepEqual(logSources(OBSERVED, { ...LOGS, namespace: "shop" }), {
    containers: [{ service: "app", containerId: "c2" }],
  });
});

Deno.test("logSources() reads the agent's journal, and names a request that asks for nothing or both", () => {
  const { namespace: _n, deployment: _d, ...bare } = LOGS;
  assert.deepEqual(logSources(OBSERVED, { ...bare, agent: true }), { agent: true });
  assert.deepEqual(logSources(OBSERVED, { ...LOGS, agent: true }), {
    problem: "ask for the agent's journal or a deployment's logs, not both",
  });
  assert.deepEqual(logSources(OBSERVED, bare), {
    problem: "a logs request names a namespace and a deployment, or the agent",
  });
  assert.match(
    (logSources(OBSERVED, { ...LOGS, deployment: "wbe" }) as { problem: string }).problem,
    /no container of deployment "wbe"/,
  );
});

Deno.test("LogsRequest refuses a credit smaller than a frame and a session id that is not one token", () => {
  assert.equal(LogsRequest.safeParse({ ...LOGS, credit: MIN_CREDIT - 1 }).success, false);
  assert.equal(LogsRequest.safeParse({ ...LOGS, sessionId: "a.b.c.d.e.f" }).success, false);
  assert.equal(LogsRequest.safeParse({ ...LOGS, sessionId: "*" }).success, false);
});

Deno.test("sinceSeconds() measures an age on the device's clock and keeps an RFC 3339 time", () => {
  const now = Date.UTC(2026, 11, 6, 3, 0, 0);
  assert.deepEqual(sinceSeconds(undefined, now), {});
  assert.deepEqual(sinceSeconds("10m", now), { seconds: now / 1000 - 600 });
  assert.deepEqual(sinceSeconds("2026-12-06T02:00:00Z", now), { seconds: now / 1000 - 3600 });
  assert.match((sinceSeconds("yesterday", now) as { problem: string }).problem, /"yesterday"/);
});
