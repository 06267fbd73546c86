import assert from "node:assert/strict";
import { LogFrameDemuxer, logFrames } from "./log_frames.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function frame(stream: number, text: string): Uint8Array {
  const payload = enc.encode(text);
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length);
  out.set(payload, 8);
  return out;
}

const joined = (parts: Uint8Array[]) => parts.map((p) => dec.decode(p)).join("");

Deno.test("LogFrameDemuxer yields the payloads of frames cut at every byte", () => {
  const stream = new Uint8Array([...frame(1, "out 1\n"), ...frame(2, "err\n"), ...frame(1, "x")]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new LogFrameDemuxer();
    const text = joined([...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))]);
    assert.equal(text, "out 1\nerr\nx", `cut at ${cut}`);
  }
});

Deno.test("LogFrameDemuxer passes a TTY's raw stream through", () => {
  const d = new LogFrameDemuxer();
  assert.deepEqual(d.push(enc.encode("he")), []);
  assert.equal(joined(d.push(enc.encode("llo\n"))), "hello\n");
  assert.equal(joined(d.push(enc.encode("more\n"))), "more\n");
});

/** A byte stream that, like a `fetch` body, fills a reader's buffer with one chunk per pull. */
function byteBody(chunks: Uint8Array[]) {
  const seen = { pulls: 0, cancelled: false };
  let next = 0;
  const body = new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    pull(controller) {
      seen.pulls++;
      const request = controller.byobRequest!;
      const chunk = chunks[next++];
      if (chunk === undefined) {
        controller.close();
        return request.respond(0);
      }
      const view = request.view!;
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(chunk);
      request.respond(chunk.length);
    },
    cancel() {
      seen.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { body, seen };
}

Deno.test("logFrames yields each output's payloads across reads cut anywhere, each a copy owning only its bytes", async () => {
  const lines = Array.from({ length: 50 }, (_, i) => `${i} ${"x".repeat(1000)}\n`);
  const stream = new Uint8Array(lines.flatMap((line, i) => [...frame(1 + i % 2, line)]));
  // Cuts that split headers and payloads, so a frame spans reads of the one reused buffer.
  const cuts = [];
  for (let at = 0; at < stream.length; at += 700) cuts.push(stream.subarray(at, at + 700));
  const frames = await Array.fromAsync(logFrames(byteBody(cuts).body));
  const of = (stream: string) =>
    joined(frames.filter((f) => f.stream === stream).map((f) => f.data));
  assert.equal(of("stdout"), lines.filter((_, i) => i % 2 === 0).join(""));
  assert.equal(of("stderr"), lines.filter((_, i) => i % 2 === 1).join(""));
  for (const { data } of frames) {
    // A view on the 64 KiB read buffer would keep all of it alive for one line.
    assert.equal(data.buffer.byteLength, data.byteLength);
  }
});

Deno.test("logFrames reads the body only as far as it is read; cancelling it cancels the body", async () => {
  const { body, seen } = byteBody(Array.from({ length: 10 }, () => frame(1, "line\n")));
  const reader = logFrames(body).getReader();
  assert.equal(joined([(await reader.read()).value!.data]), "line\n");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(seen.pulls, 1, "no read ahead");
  await reader.cancel();
  assert.ok(seen.cancelled);
});

Deno.test("LogFrameDemuxer names each frame's output: stream 2 is stderr", () => {
  const d = new LogFrameDemuxer();
  const frames = d.pushFrames(new Uint8Array([...frame(1, "out\n"), ...frame(2, "err\n")]));
  assert.deepEqual(frames.map((f) => [f.stream, dec.decode(f.data)]), [
    ["stdout", "out\n"],
    ["stderr", "err\n"],
  ]);
});

Deno.test("LogFrameDemuxer told the stream is raw passes its first bytes at once", () => {
  // A shell prompt is 2 bytes: guessing would hold it until 4 bytes came.
  assert.equal(joined(new LogFrameDemuxer("raw").push(enc.encode("$ "))), "$ ");
  assert.deepEqual(new LogFrameDemuxer().push(enc.encode("$ ")), []);
  const framed = new LogFrameDemuxer("framed");
  assert.equal(joined(framed.push(frame(1, "x"))), "x");
});
