/**
 * Podman's log stream framing, incrementally: a container without a TTY sends each write as a
 * frame (stream byte 1 or 2, three zero bytes, big-endian length, payload); one with a TTY
 * sends raw bytes. No I/O: {@link logFrames} reads a stream it is given.
 * @module
 */

import { concat, type DataFrame } from "../../core/device_sessions.ts";

const HEADER = 8;
const STDERR = 2;
/** The most one read of a log body takes. */
const READ_BYTES = 64 * 1024;

/**
 * The payloads of a Podman log body (see {@link LogFrameDemuxer}) with their output, one frame
 * per run of one output in each read of it, read only as fast as the result is. Outputs stay
 * apart: Podman sends a line longer than its buffer in pieces, and a stderr line can come
 * between two pieces of a stdout line. The body is read into one reused buffer: Deno's default
 * reader gives every read a fresh 64 KiB buffer, and Podman sends each log line as its own
 * frame, so 50 MB of 1 KiB lines went through 3 GB of buffers and the agent's resident memory
 * grew by the ones awaiting garbage collection (measured: +80 MB). Each frame is a copy that
 * owns only its bytes.
 * @param body a byte stream, as a `fetch` response body is
 */
export function logFrames(body: ReadableStream<Uint8Array>): ReadableStream<DataFrame> {
  const reader = body.getReader({ mode: "byob" });
  const demuxer = new LogFrameDemuxer();
  let buffer = new ArrayBuffer(READ_BYTES);
  return new ReadableStream<DataFrame>({
    async pull(controller) {
      while (true) {
        const { value, done } = await reader.read(new Uint8Array(buffer));
        if (done) return controller.close();
        // The read hands the buffer back in `value`; the payloads are copied out before reuse.
        buffer = value.buffer;
        const runs = byOutput(demuxer.pushFrames(value));
        if (runs.length === 0) continue;
        for (const run of runs) controller.enqueue(run);
        return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Consecutive frames of one output as one frame each, copied. */
function byOutput(frames: readonly DataFrame[]): DataFrame[] {
  const runs: DataFrame[] = [];
  for (let at = 0; at < frames.length;) {
    const stream = frames[at]!.stream;
    let end = at;
    while (end < frames.length && frames[end]!.stream === stream) end++;
    runs.push({ data: concat(frames.slice(at, end).map((f) => f.data)), stream });
    at = end;
  }
  return runs;
}

/**
 * Turns chunks of a log (or exec) stream, cut anywhere, into the payloads in order. Frames
 * name their output (stream byte 2 is stderr); raw bytes are stdout.
 */
export class LogFrameDemuxer {
  #buffer = new Uint8Array(0);
  /** Undecided until the first header's bytes arrived; then framed or raw for good. */
  #framed: boolean | undefined;

  /**
   * @param mode when the caller knows (an exec knows whether it has a TTY): a raw stream's
   * first bytes are not held back to tell, as a 2-byte shell prompt would be.
   */
  constructor(mode?: "raw" | "framed") {
    if (mode !== undefined) this.#framed = mode === "framed";
  }

  /** The payload bytes `chunk` completes (raw bytes as they are). */
  push(chunk: Uint8Array): Uint8Array[] {
    return this.pushFrames(chunk).map((f) => f.data);
  }

  /** The payloads `chunk` completes, each with its output. */
  pushFrames(chunk: Uint8Array): DataFrame[] {
    if (this.#framed === false) {
      return chunk.length === 0 ? [] : [{ data: chunk, stream: "stdout" }];
    }
    const buffer = this.#buffer.length === 0 ? chunk : concat([this.#buffer, chunk]);
    if (this.#framed === undefined) {
      if (buffer.length < 4) {
        this.#buffer = buffer.slice();
        return [];
      }
      this.#framed = buffer[0]! <= 2 && buffer[1] === 0 && buffer[2] === 0 && buffer[3] === 0;
      if (!this.#framed) {
        this.#buffer = new Uint8Array(0);
        return [{ data: buffer, stream: "stdout" }];
      }
    }
    const out: DataFrame[] = [];
    let at = 0;
    while (at + HEADER <= buffer.length) {
      const size = new DataView(buffer.buffer, buffer.byteOffset + at + 4, 4).getUint32(0);
      if (at + HEADER + size > buffer.length) break;
      if (size > 0) {
        out.push({
          data: buffer.subarray(at + HEADER, at + HEADER + size),
          stream: buffer[at] === STDERR ? "stderr" : "stdout",
        });
      }
      at += HEADER + size;
    }
    this.#buffer = buffer.slice(at);
    return out;
  }
}
