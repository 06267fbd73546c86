import assert from "node:assert/strict";
import {
  type AuditRecord,
  ContainerLabels,
  type DataFrame,
  LogsRequest,
  MIN_CREDIT,
  type ObservedContainer,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
} from "../core/mod.ts";
import { createLogger } from "../adapters/logger.ts";
import { JournalUnavailableError } from "../adapters/host/journal.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { LogSessions } from "./log_sessions.ts";
import { QUEUE_HIGH_WATER } from "./session.ts";
import { FakeTransport } from "../testing/fake_session_transport.ts";
import { CommandRefused } from "./command_responder.ts";

const enc = new TextEncoder();
const SESSION = "abcdef0123456789";
const OUT = `device-sessions.pi-1.mia-1.${SESSION}.out`;
const CTL = `device-sessions.pi-1.mia-1.${SESSION}.ctl`;

function container(id: string, service: string): ObservedContainer {
  return {
    id,
    name: `web-${service}`,
    labels: {
      [ContainerLabels.namespace]: "default",
      [ContainerLabels.deployment]: "web",
      [ContainerLabels.service]: service,
    },
    state: "running",
    exitCode: 0,
  };
}

/** A source of `lines` lines of `width` bytes, made only as they are read; counts them. */
function lazySource(lines: number, width = 1000, tag = "l") {
  const made = { bytes: 0, cancelled: false };
  let i = 0;
  const stream = new ReadableStream<DataFrame>({
    pull(controller) {
      if (i >= lines) return controller.close();
      const line = enc.encode(`${tag}${i++} `.padEnd(width - 1, "x") + "\n");
      made.bytes += line.length;
      controller.enqueue({ data: line, stream: "stdout" });
    },
    cancel() {
      made.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, made };
}

/** `texts` as a source of stdout, one piece each. */
function stdout(...texts: string[]): ReadableStream<DataFrame> {
  return ReadableStream.from(
    texts.map((t) => ({ data: enc.encode(t), stream: "stdout" as const })),
  );
}

function setup(
  sources: Record<string, ReadableStream<DataFrame>>,
  options: { maxBytes?: number; journal?: () => Promise<ReadableStream<Uint8Array>> } = {},
) {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  const audits: AuditRecord[] = [];
  const sessions = new LogSessions({
    deviceId: "pi-1",
    transport,
    clock,
    log: createLogger({ level: "error" }),
    audit: (r) => {
      audits.push(r);
      return Promise.resolve();
    },
    runtime: {
      listManaged: () =>
        Promise.resolve(Object.keys(sources).map((service) => container(`c-${service}`, service))),
      logs: (id) => Promise.resolve(sources[id.slice(2)]!),
    },
    journal: options.journal ??
      (() => Promise.reject(new JournalUnavailableError("journalctl is not installed"))),
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
  });
  return { clock, transport, audits, sessions };
}

const request = (extra: Record<string, unknown> = {}) =>
  LogsRequest.parse({
    requestId: "r1",
    sessionId: SESSION,
    namespace: "default",
    deployment: "web",
    credit: MIN_CREDIT,
    ...extra,
  });

Deno.test("LogSessions sends no data beyond the credit and reads the source no further meanwhile", async () => {
  const { stream, made } = lazySource(5_000); // 5 MB
  const { clock, transport, sessions } = setup({ app: stream });
  const result = await sessions.open(request(), "mia-1");
  assert.deepEqual(result.sources, ["app"]);
  await clock.advance(0);
  assert.equal(transport.dataBytes, 65_000, "65 whole lines of 1000 bytes fit 64 KiB");
  assert.ok(
    made.bytes <= MIN_CREDIT + QUEUE_HIGH_WATER + 1000,
    `read ${made.bytes} bytes of the source with ${MIN_CREDIT} of credit`,
  );
  transport.control(CTL, { type: "credit", upTo: 2 * MIN_CREDIT });
  await clock.advance(0);
  assert.equal(transport.dataBytes, 131_000);
  assert.ok(transport.sent.every((s) => s.subject === OUT));
  await sessions.endAll("going-away", "the agent is stopping");
});

Deno.test("LogSessions streams everything as credit comes, then ends done with an audit record", async () => {
  const { stream } = lazySource(300);
  const { clock, transport, audits, sessions } = setup({ app: stream });
  await sessions.open(request({ tail: 300 }), "mia-1");
  for (let upTo = MIN_CREDIT; !transport.end; upTo += MIN_CREDIT) {
    transport.control(CTL, { type: "credit", upTo });
    await clock.advance(0);
  }
  assert.equal(transport.dataBytes, 300_000);
  assert.ok(transport.text.startsWith("l0 x"));
  assert.deepEqual(transport.end, { reason: "done", message: "all was sent", bytes: 300_000 });
  await clock.advance(0);
  assert.equal(audits.length, 1);
  assert.deepEqual(
    { ...audits[0]!, startedAt: 0, durationMs: 0 },
    {
      kind: "session",
      deviceId: "pi-1",
      principal: "mia-1",
      verb: "logs",
      requestId: "r1",
      arguments: { namespace: "default", deployment: "web", tail: "300" },
      startedAt: 0,
      durationMs: 0,
      outcome: "ok",
      reason: "done: all was sent",
      sessionId: SESSION,
      bytes: 300_000,
    },
  );
  assert.equal(sessions.size, 0);
  assert.equal(transport.listening(CTL), false);
});

Deno.test("LogSessions ends a session whose requester went quiet as idle, not one that keeps granting", async () => {
  const { stream, made } = lazySource(1_000_000);
  const { clock, transport, sessions } = setup({ app: stream });
  await sessions.open(request({ follow: true }), "mia-1");
  for (let t = 0; t < 2 * SESSION_IDLE_MS; t += SESSION_KEEPALIVE_MS) {
    transport.control(CTL, { type: "credit", upTo: MIN_CREDIT });
    await clock.advance(SESSION_KEEPALIVE_MS);
  }
  assert.equal(transport.end?.reason, undefined);
  await clock.advance(SESSION_IDLE_MS);
  assert.equal(transport.end?.reason, "idle");
  assert.ok(made.cancelled, "the source is closed");
  assert.equal(sessions.size, 0);
});

Deno.test("LogSessions says it is still there with keepalive frames while there is nothing to send", async () => {
  const never = new ReadableStream<DataFrame>();
  const { clock, transport, sessions } = setup({ app: never });
  await sessions.open(request({ follow: true }), "mia-1");
  await clock.advance(SESSION_KEEPALIVE_MS);
  transport.control(CTL, { type: "credit", upTo: MIN_CREDIT });
  await clock.advance(SESSION_KEEPALIVE_MS);
  assert.equal(transport.sent.filter((s) => s.frame === "keepalive").length, 2);
  await sessions.endAll("going-away", "the agent on pi-1 is stopping");
  assert.deepEqual(transport.end, {
    reason: "going-away",
    message: "the agent on pi-1 is stopping",
    bytes: 0,
  });
});

Deno.test("LogSessions ends on the requester's cancel and closes the source", async () => {
  const { stream, made } = lazySource(1_000_000);
  const { clock, transport, audits, sessions } = setup({ app: stream });
  await sessions.open(request({ follow: true }), "mia-1");
  transport.control(CTL, { type: "cancel" });
  await clock.advance(0);
  assert.equal(transport.end?.reason, "cancelled");
  assert.ok(made.cancelled);
  assert.equal(audits[0]?.reason, "cancelled: the requester cancelled");
});

Deno.test("LogSessions stops at the session's size bound and says so", async () => {
  const { stream } = lazySource(1_000);
  const { clock, transport, sessions } = setup({ app: stream }, { maxBytes: 10_500 });
  await sessions.open(request(), "mia-1");
  await clock.advance(0);
  assert.equal(transport.dataBytes, 10_000);
  assert.equal(transport.end?.reason, "limit");
});

Deno.test("LogSessions prefixes each line with its service when it reads several containers", async () => {
  const { clock, transport, sessions } = setup({
    app: lazySource(2, 10, "a").stream,
    db: lazySource(2, 10, "d").stream,
  });
  assert.deepEqual((await sessions.open(request(), "mia-1")).sources, ["app", "db"]);
  await clock.advance(0);
  const lines = transport.text.trimEnd().split("\n").sort();
  assert.deepEqual(lines, [
    "[app] a0 xxxxxx",
    "[app] a1 xxxxxx",
    "[db] d0 xxxxxx",
    "[db] d1 xxxxxx",
  ]);
  assert.equal(transport.end?.reason, "done");
});

Deno.test("LogSessions refuses what it cannot read, naming why, before any session exists", async () => {
  const { audits, transport, sessions } = setup({ app: lazySource(1).stream });
  await assert.rejects(
    sessions.open(request({ deployment: "wbe" }), "mia-1"),
    (e: Error) => e instanceof CommandRefused && /no container of deployment "wbe"/.test(e.message),
  );
  await assert.rejects(
    sessions.open(request({ since: "yesterday" }), "mia-1"),
    (e: Error) => e instanceof CommandRefused && /invalid since "yesterday"/.test(e.message),
  );
  const { namespace: _n, deployment: _d, ...bare } = request();
  await assert.rejects(
    sessions.open({ ...bare, agent: true }, "mia-1"),
    (e: Error) => e instanceof CommandRefused && e.message === "journalctl is not installed",
  );
  assert.deepEqual(audits, [], "the command's record says why; no session was held");
  assert.deepEqual(transport.sent, []);
  assert.equal(sessions.size, 0);
});

Deno.test("LogSessions cuts an overlong line and marks it", async () => {
  const long = stdout("x".repeat(40_000) + "\nshort\n");
  const { clock, transport, sessions } = setup({ app: long });
  await sessions.open(request(), "mia-1");
  await clock.advance(0);
  const [first, second] = transport.text.split("\n");
  assert.equal(first, "x".repeat(16 * 1024) + " [fleet: line truncated]");
  assert.equal(second, "short");
});

Deno.test("LogSessions splits each output on its own: a stderr line between two pieces of a long stdout line stays whole", async () => {
  // Podman sends a line longer than its buffer in pieces; another output's line can come between.
  const frames: DataFrame[] = [
    { data: enc.encode("a long stdout "), stream: "stdout" },
    { data: enc.encode("an error\n"), stream: "stderr" },
    { data: enc.encode("line\n"), stream: "stdout" },
  ];
  const { clock, transport, sessions } = setup({ web: ReadableStream.from(frames) });
  await sessions.open(request(), "mia-1");
  await clock.advance(0);
  assert.equal(transport.end?.reason, "done");
  assert.deepEqual(transport.text.split("\n").filter((l) => l !== "").sort(), [
    "a long stdout line",
    "an error",
  ]);
});
