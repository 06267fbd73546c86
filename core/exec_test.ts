import assert from "node:assert/strict";
import { ExecRequest } from "./device_commands.ts";
import { MIN_CREDIT } from "./device_sessions.ts";
import {
  admitExec,
  execAuditArguments,
  execContainer,
  type ExecPolicy,
  MAX_EXEC_SESSIONS,
  type OpenExec,
} from "./exec.ts";
import { ContainerLabels } from "./planner.ts";

const REQUEST = ExecRequest.parse({
  requestId: "r1",
  sessionId: "abcdef0123456789",
  namespace: "default",
  deployment: "web",
  command: ["sh"],
  credit: MIN_CREDIT,
});
const ON: ExecPolicy = { exec: true, hostShell: false };
const SHELL = { ...REQUEST, tty: true, stdin: true };
const HOST = (() => {
  const { namespace: _n, deployment: _d, ...bare } = REQUEST;
  return { ...bare, host: true };
})();

function open(n: number, tty = false): OpenExec[] {
  return Array.from({ length: n }, (_, i) => ({ sessionId: `s${i}`, principal: `p-${i}`, tty }));
}

Deno.test("admitExec() runs a command in a deployment when exec is on", () => {
  assert.deepEqual(admitExec("pi-1", REQUEST, ON, []), { admit: true });
  assert.deepEqual(admitExec("pi-1", SHELL, ON, open(2)), { admit: true });
});

Deno.test("admitExec() refuses everything when the device switched exec off", () => {
  for (const request of [REQUEST, SHELL, HOST]) {
    assert.deepEqual(admitExec("pi-1", request, { exec: false, hostShell: true }, []), {
      refuse: "exec is switched off on device pi-1 ([remote] exec = false in its config)",
    });
  }
});

Deno.test("admitExec() runs a host shell only when the device's config allows it", () => {
  assert.deepEqual(admitExec("pi-1", HOST, ON, []), {
    refuse: "device pi-1 does not allow a shell on its host: its config does not set " +
      "[remote] host_shell = true",
  });
  assert.deepEqual(admitExec("pi-1", HOST, { exec: true, hostShell: true }, []), { admit: true });
  assert.deepEqual(admitExec("pi-1", { ...REQUEST, host: true }, { ...ON, hostShell: true }, []), {
    refuse: "ask for a shell on the host or in a deployment, not both",
  });
  const { host: _h, ...nothing } = HOST;
  assert.deepEqual(admitExec("pi-1", nothing, ON, []), {
    refuse: "an exec request names a namespace and a deployment, or the host",
  });
});

Deno.test("admitExec() keeps one interactive session: a second is refused, --force takes over", () => {
  const mine = { sessionId: "t1", principal: "ada-1", tty: true };
  assert.deepEqual(admitExec("pi-1", SHELL, ON, [mine]), {
    refuse: "device pi-1 already has an interactive session, opened by ada-1; add --force " +
      "to take it over (they are told)",
  });
  assert.deepEqual(admitExec("pi-1", { ...SHELL, force: true }, ON, [mine]), {
    admit: true,
    takeOver: mine,
  });
  // A command without a terminal is not interactive: it runs beside the shell.
  assert.deepEqual(admitExec("pi-1", REQUEST, ON, [mine]), { admit: true });
});

Deno.test("admitExec() bounds the sessions open at once; a take-over frees its place", () => {
  assert.match(
    (admitExec("pi-1", REQUEST, ON, open(MAX_EXEC_SESSIONS)) as { refuse: string }).refuse,
    new RegExp(`already has ${MAX_EXEC_SESSIONS} exec sessions open`),
  );
  const full = [...open(MAX_EXEC_SESSIONS - 1), { sessionId: "t", principal: "bo-1", tty: true }];
  assert.equal("admit" in admitExec("pi-1", { ...SHELL, force: true }, ON, full), true);
});

function container(id: string, deployment: string, service: string) {
  return {
    id,
    name: `default-${deployment}-${service}`,
    labels: {
      [ContainerLabels.namespace]: "default",
      [ContainerLabels.deployment]: deployment,
      [ContainerLabels.service]: service,
    },
    state: "running",
    exitCode: 0,
  };
}

const WEB = { namespace: "default", deployment: "web" };

Deno.test("execContainer() takes the one container, or the named service of several", () => {
  const observed = [container("c1", "web", "app"), container("c2", "db", "pg")];
  const many = [...observed, container("c3", "web", "cache")];
  assert.deepEqual(execContainer(observed, WEB), { service: "app", containerId: "c1" });
  assert.deepEqual(execContainer(many, { ...WEB, service: "cache" }), {
    service: "cache",
    containerId: "c3",
  });
  assert.deepEqual(execContainer(many, WEB), {
    problem: 'deployment "web" has several services here (app, cache): name one, as web/app',
  });
  assert.match(
    (execContainer(observed, { ...WEB, deployment: "wbe" }) as { problem: string }).problem,
    /no container of deployment "wbe"/,
  );
});

Deno.test("execAuditArguments() keeps the program and the count of arguments, never their text", () => {
  const request = { ...SHELL, command: ["mysql", "-u", "root", "--password=hunter2"] };
  assert.deepEqual(execAuditArguments(request), {
    program: "mysql",
    args: "3",
    tty: "true",
    stdin: "true",
  });
  assert.doesNotMatch(JSON.stringify(execAuditArguments(request)), /hunter2/);
});

Deno.test("ExecRequest refuses an empty command and a credit smaller than a frame", () => {
  assert.equal(ExecRequest.safeParse({ ...REQUEST, command: [] }).success, false);
  assert.equal(ExecRequest.safeParse({ ...REQUEST, credit: MIN_CREDIT - 1 }).success, false);
  assert.equal(
    ExecRequest.safeParse({ ...REQUEST, size: { rows: 0, cols: 80 } }).success,
    false,
  );
});
