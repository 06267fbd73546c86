import assert from "node:assert/strict";
import { LogFrameDemuxer } from "./log_frames.ts";

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
