import assert from "node:assert/strict";
import {
  CreditedLines,
  LineSplitter,
  MAX_FRAME_BYTES,
  newSessionId,
  SessionControl,
  sessionSubject,
  TRUNCATED_MARKER,
} from "./device_sessions.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (lines: Uint8Array[]) => lines.map((l) => dec.decode(l));

Deno.test("sessionSubject() puts the principal in its own token, so the broker can check it", () => {
  assert.equal(
    sessionSubject("pi-1", "bob-1f", "abcdef0123456789", "out"),
    "device-sessions.pi-1.bob-1f.abcdef0123456789.out",
  );
  assert.throws(() => sessionSubject("pi-1", "bob.*", "abcdef0123456789", "out"), /principal/);
  assert.throws(() => sessionSubject("pi-1", "bob", "ab.cd.ef.gh", "ctl"), /session id/);
});

Deno.test("newSessionId() is 32 lowercase hex digits", () => {
  assert.match(newSessionId(), /^[0-9a-f]{32}$/);
  assert.equal(newSessionId(new Uint8Array(16).fill(255)), "f".repeat(32));
});

Deno.test("LineSplitter joins lines across chunks and keeps a partial one until flush", () => {
  const s = new LineSplitter(100);
  assert.deepEqual(text(s.push(enc.encode("a\nbb"))), ["a\n"]);
  assert.deepEqual(text(s.push(enc.encode("b\n\nc"))), ["bbb\n", "\n"]);
  assert.deepEqual(text(s.flush()), ["c\n"]);
  assert.deepEqual(s.flush(), []);
});

Deno.test("LineSplitter cuts a long line at the bound, marks it, and drops its rest", () => {
  const s = new LineSplitter(4, "[web] ");
  assert.deepEqual(text(s.push(enc.encode("abcdefgh"))), [`[web] abcd${TRUNCATED_MARKER}\n`]);
  assert.deepEqual(text(s.push(enc.encode("ijk\nok\n"))), ["[web] ok\n"]);
  // Exactly at the bound is not truncated; one byte over (in the next chunk) is.
  assert.deepEqual(text(s.push(enc.encode("wxyz\n"))), ["[web] wxyz\n"]);
  assert.deepEqual(text(s.push(enc.encode("wxyz"))), []);
  assert.deepEqual(text(s.push(enc.encode("!\n"))), [`[web] wxyz${TRUNCATED_MARKER}\n`]);
});

Deno.test("LineSplitter never cuts a UTF-8 character in half", () => {
  const s = new LineSplitter(4);
  // "aé€": a (1 byte), é (2), € (3): the cut at 4 would split €.
  assert.deepEqual(text(s.push(enc.encode("aé€\n"))), [`aé${TRUNCATED_MARKER}\n`]);
});

Deno.test("CreditedLines sends whole lines, never beyond the credit, and resumes on a grant", () => {
  const q = new CreditedLines(10);
  for (const l of ["aaaa\n", "bbbb\n", "cc\n"]) q.push(enc.encode(l));
  assert.equal(dec.decode(q.nextFrame()?.data), "aaaa\nbbbb\n");
  assert.equal(q.nextFrame(), undefined, "3 bytes queued, 0 credit left");
  q.grant(12); // a stale or smaller grant changes nothing
  q.grant(11);
  assert.equal(q.nextFrame(), undefined, "2 bytes of credit: the line does not fit");
  q.grant(13);
  assert.equal(dec.decode(q.nextFrame()?.data), "cc\n");
  assert.equal(q.sent, 13);
  assert.equal(q.queued, 0);
  assert.equal(q.nextFrame(), undefined);
});

Deno.test("CreditedLines keeps a frame under the frame size and a session's limit", () => {
  const q = new CreditedLines(10 * MAX_FRAME_BYTES);
  const line = new Uint8Array(1000).fill(0x61);
  for (let i = 0; i < 200; i++) q.push(line);
  assert.equal(q.nextFrame()!.data.length, Math.floor(MAX_FRAME_BYTES / 1000) * 1000);
  assert.equal(q.nextFrame(2500)!.data.length, 2000);
  assert.equal(q.nextFrame(999), undefined);
});

Deno.test("CreditedLines never puts two outputs in one frame, and keeps their order", () => {
  const q = new CreditedLines(100);
  q.push(enc.encode("out1\n"));
  q.push(enc.encode("out2\n"));
  q.push(enc.encode("err1\n"), "stderr");
  q.push(enc.encode("out3\n"));
  const frames = [q.nextFrame(), q.nextFrame(), q.nextFrame(), q.nextFrame()];
  assert.deepEqual(frames.map((f) => f && [f.stream, dec.decode(f.data)]), [
    ["stdout", "out1\nout2\n"],
    ["stderr", "err1\n"],
    ["stdout", "out3\n"],
    undefined,
  ]);
});

Deno.test("SessionControl reads credit, cancel and a terminal's size, ignoring unknown fields", () => {
  assert.deepEqual(SessionControl.parse({ type: "credit", upTo: 5, more: 1 }), {
    type: "credit",
    upTo: 5,
  });
  assert.deepEqual(SessionControl.parse({ type: "cancel" }), { type: "cancel" });
  assert.equal(SessionControl.safeParse({ type: "credit", upTo: -1 }).success, false);
  assert.deepEqual(SessionControl.parse({ type: "resize", rows: 40, cols: 120 }), {
    type: "resize",
    rows: 40,
    cols: 120,
  });
  assert.equal(SessionControl.safeParse({ type: "resize", rows: 0, cols: 80 }).success, false);
});
