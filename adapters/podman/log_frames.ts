/**
 * Podman's log stream framing, incrementally: a container without a TTY sends each write as a
 * frame (stream byte 1 or 2, three zero bytes, big-endian length, payload); one with a TTY
 * sends raw bytes. Pure.
 * @module
 */

const HEADER = 8;

/** Turns chunks of a log stream, cut anywhere, into the payload bytes in order. */
export class LogFrameDemuxer {
  #buffer = new Uint8Array(0);
  /** Undecided until the first header's bytes arrived; then framed or raw for good. */
  #framed: boolean | undefined;

  /** The payload bytes `chunk` completes (raw bytes as they are). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#framed === false) return chunk.length === 0 ? [] : [chunk];
    const buffer = this.#buffer.length === 0 ? chunk : join(this.#buffer, chunk);
    if (this.#framed === undefined) {
      if (buffer.length < 4) {
        this.#buffer = buffer.slice();
        return [];
      }
      this.#framed = buffer[0]! <= 2 && buffer[1] === 0 && buffer[2] === 0 && buffer[3] === 0;
      if (!this.#framed) {
        this.#buffer = new Uint8Array(0);
        return [buffer];
      }
    }
    const out: Uint8Array[] = [];
    let at = 0;
    while (at + HEADER <= buffer.length) {
      const size = new DataView(buffer.buffer, buffer.byteOffset + at + 4, 4).getUint32(0);
      if (at + HEADER + size > buffer.length) break;
      if (size > 0) out.push(buffer.subarray(at + HEADER, at + HEADER + size));
      at += HEADER + size;
    }
    this.#buffer = buffer.slice(at);
    return out;
  }
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
