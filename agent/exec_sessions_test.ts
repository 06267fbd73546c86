import assert from "node:assert/strict";
import {
  type AuditRecord,
  ContainerLabels,
  type DataFrame,
  ExecRequest,
  MIN_CREDIT,
  type ObservedContainer,
} from "../core/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { FakeTransport } from "../testing/fake_session_transport.ts";
import { eventually } from "../testing/eventually.ts";
import { ExecSessions, STDIN_WINDOW } from "./exec_sessions.ts";
import { CommandRefused } from "./command_responder.ts";
import type { ExecOptions, ExecProcess, ExecTarget } from "./runtime.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const APP: ObservedContainer = {
  id: "c1",
  name: "web-app",
  labels: {
    [ContainerLabels.namespace]: "default",
    [ContainerLabels.deployment]: "web",
    [ContainerLabels.service]: "app",
  },
  state: "running",
  exitCode: 0,
};

function request(sessionId: string, extra: Partial<ExecRequest> = {}): ExecRequest {
  return ExecRequest.parse({
    requestId: `r-${sessionId}`,
    sessionId,
    namespace: "default",
    deployment: "web",
    command: ["sh"],
    credit: MIN_CREDIT,
    ...extra,
  });
}

const subject = (sessionId: string, channel: string, principal = "ada-1") =>
  `device-sessions.pi-1.${principal}.${sessionId}.${channel}`;

/** A command the test drives: what it wrote to stdin, its output and exit as the test says. */
class FakeProcess implements ExecProcess {
  readonly stdin: string[] = [];
  stdinClosed = false;
  closed = false;
  sizes: { rows: number; cols: number }[] = [];
  #exitCode: number | undefined;
  #controller!: ReadableStreamDefaultController<DataFrame>;
  readonly output = new ReadableStream<DataFrame>({ start: (c) => void (this.#controller = c) });

  print(text: string, stream: "stdout" | "stderr" = "stdout"): void {
    this.#controller.enqueue({ data: enc.encode(text), stream });
  }
  exit(code: number): void {
    this.#exitCode = code;
    this.#controller.close();
  }
  write(data: Uint8Array): Promise<void> {
    this.stdin.push(dec.decode(data));
    return Promise.resolve();
  }
  closeStdin(): Promise<void> {
    this.stdinClosed = true;
    return Promise.resolve();
  }
  resize(size: { rows: number; cols: number }): Promise<void> {
    this.sizes.push(size);
    return Promise.resolve();
  }
  exitCode(): Promise<number | undefined> {
    return Promise.resolve(this.#exitCode);
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function setup(policy = { exec: true, hostShell: false }) {
  const transport = new FakeTransport();
  const audits: AuditRecord[] = [];
  const started: { target: ExecTarget; options: ExecOptions; process: FakeProcess }[] = [];
  let gate: Promise<void> = Promise.resolve();
  const sessions = new ExecSessions({
    deviceId: "pi-1",
    transport,
    clock: new FakeClock(),
    log: silentLogger,
    audit: (record) => {
      audits.push(record);
      return Promise.resolve();
    },
    policy,
    runtime: {
      listManaged: () => Promise.resolve([APP]),
      exec: async (target, options) => {
        await gate;
        const process = new FakeProcess();
        started.push({ target, options, process });
        return process;
      },
      removeHostShells: () => Promise.resolve(),
    },
  });
  return {
    transport,
    audits,
    started,
    sessions,
    hold: () => {
      let release!: () => void;
      gate = new Promise((resolve) => release = resolve);
      return release;
    },
  };
}

Deno.test("ExecSessions runs the command in the deployment's container and ends with its exit code", async () => {
  const { transport, audits, started, sessions } = setup();
  const result = await sessions.open(request("session01", { command: ["sh", "-c", "x"] }), "ada-1");
  assert.deepEqual(result, { sessionId: "session01", target: "web/app", stdinCredit: 0 });
  assert.deepEqual(started[0]!.target, { containerId: "c1" });
  const p = started[0]!.process;
  p.print("out\n");
  p.print("err\n", "stderr");
  p.exit(3);
  await eventually("the end", () => transport.end);
  assert.deepEqual(
    transport.sent.filter((s) => s.frame !== "end").map((s) => [s.frame, dec.decode(s.data)]),
    [[undefined, "out\n"], ["stderr", "err\n"]],
  );
  assert.deepEqual(transport.end, {
    reason: "exited",
    message: "the command exited with code 3",
    bytes: 8,
    exitCode: 3,
  });
  await eventually("the audit record", () => audits.length === 1);
  assert.equal(audits[0]!.exitCode, 3);
  assert.deepEqual(audits[0]!.arguments, {
    namespace: "default",
    deployment: "web",
    program: "sh",
    args: "2",
  });
  assert.equal(p.closed, true, "let go of once the session ended");
});

Deno.test("ExecSessions writes stdin in order, grants more as it is written, and ends it on eof", async () => {
  const { transport, started, sessions } = setup();
  const result = await sessions.open(request("session01", { stdin: true }), "ada-1");
  assert.equal(result.stdinCredit, STDIN_WINDOW);
  const p = started[0]!.process;
  const half = new Uint8Array(STDIN_WINDOW / 2).fill(0x61);
  transport.deliver(subject("session01", "in"), enc.encode("one\n"));
  transport.deliver(subject("session01", "in"), half);
  transport.deliver(subject("session01", "in"), new Uint8Array(0), "eof");
  await eventually("stdin closed", () => p.stdinClosed);
  assert.equal(p.stdin[0], "one\n");
  assert.equal(p.stdin.join("").length, 4 + half.length);
  assert.deepEqual(transport.frames("credit"), [{ upTo: 4 + half.length + STDIN_WINDOW }]);
});

Deno.test("ExecSessions ends a session whose requester sends stdin beyond its credit", async () => {
  const { transport, sessions } = setup();
  await sessions.open(request("session01", { stdin: true }), "ada-1");
  transport.deliver(subject("session01", "in"), new Uint8Array(STDIN_WINDOW + 1));
  await eventually("the end", () => transport.end);
  assert.equal(transport.end!.reason, "failed");
  assert.match(transport.end!.message, /stdin beyond its credit of 65536 bytes/);
});

Deno.test("ExecSessions resizes the command's terminal when the requester's window changes", async () => {
  const { transport, started, sessions } = setup();
  await sessions.open(request("session01", { tty: true, size: { rows: 24, cols: 80 } }), "ada-1");
  assert.deepEqual(started[0]!.options.size, { rows: 24, cols: 80 });
  transport.control(subject("session01", "ctl"), { type: "resize", rows: 50, cols: 160 });
  await eventually("the resize", () => started[0]!.process.sizes.length === 1);
  assert.deepEqual(started[0]!.process.sizes, [{ rows: 50, cols: 160 }]);
});

Deno.test("ExecSessions: a second interactive session waits for --force, which tells the first", async () => {
  const { transport, started, sessions } = setup();
  await sessions.open(request("session01", { tty: true }), "ada-1");
  await assert.rejects(
    sessions.open(request("session02", { tty: true }), "bob-1"),
    (e: unknown) => e instanceof CommandRefused && /opened by ada-1; add --force/.test(e.message),
  );
  const forced = await sessions.open(request("session02", { tty: true, force: true }), "bob-1");
  assert.equal(forced.tookOver, "session01");
  assert.deepEqual(transport.frames("notice"), [
    { message: "bob-1 took over this device's interactive session (--force)" },
  ]);
  assert.equal(transport.end?.reason, "taken-over");
  await eventually("the first command let go of", () => started[0]!.process.closed);
  assert.equal(sessions.size, 1);
});

Deno.test("ExecSessions holds an interactive place while its command starts: a second one is refused", async () => {
  const { started, sessions, hold } = setup();
  const release = hold();
  const first = sessions.open(request("session01", { tty: true }), "ada-1");
  await assert.rejects(
    sessions.open(request("session02", { tty: true }), "bob-1"),
    (e: unknown) => e instanceof CommandRefused && /opened by ada-1/.test(e.message),
  );
  release();
  await first;
  assert.equal(started.length, 1);
});

Deno.test("ExecSessions refuses what the device's config does not allow, before running anything", async () => {
  const off = setup({ exec: false, hostShell: true });
  await assert.rejects(off.sessions.open(request("session01"), "ada-1"), /exec is switched off/);
  const { sessions, started } = setup();
  const { namespace: _n, deployment: _d, ...bare } = request("session01");
  await assert.rejects(
    sessions.open({ ...bare, host: true }, "ada-1"),
    /does not allow a shell on its host/,
  );
  await assert.rejects(
    sessions.open(request("session02", { deployment: "api" }), "ada-1"),
    /no container of deployment "api"/,
  );
  assert.equal(off.started.length + started.length, 0);
});
