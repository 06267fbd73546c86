/**
 * The connection of a started exec: `POST /exec/{id}/start` answers `101 UPGRADED` and the
 * same socket then carries the command's stdin one way and its output the other (framed per
 * stream without a TTY, raw with one). `fetch` cannot hand over such a socket, so this speaks
 * HTTP/1.1 on a unix connection of its own up to the upgrade.
 * @module
 */
import { concat, type DataFrame } from "../../core/device_sessions.ts";
import { LogFrameDemuxer } from "./log_frames.ts";

/** The longest answer head read before the stream starts. */
const MAX_HEAD_BYTES = 16 * 1024;
const READ_BYTES = 64 * 1024;
const HEAD_END = new TextEncoder().encode("\r\n\r\n");

/** A started exec's two directions. */
export interface ExecStream {
  /** The command's output as it comes; ends when the command closed it (it exited). */
  output: ReadableStream<DataFrame>;
  /** Writes to the command's stdin; resolves once the socket took it. */
  write(data: Uint8Array): Promise<void>;
  /** Ends the command's stdin (it reads end of file). */
  closeStdin(): Promise<void>;
  /** Drops the connection (the command keeps what it has). */
  close(): void;
}

/** Podman answered the start with something else than the upgrade. */
export class ExecStartError extends Error {
  override name = "ExecStartError";
  constructor(readonly status: number, readonly body: string) {
    super(`HTTP ${status}: ${body.trim() || "(no body)"}`);
  }
}

/**
 * POSTs `body` (JSON) to `path` on the socket and returns the upgraded stream.
 * @throws {ExecStartError} on an answer that is not `101` (or `200` with the stream)
 */
export async function startExecStream(
  socketPath: string,
  path: string,
  body: unknown,
  tty: boolean,
): Promise<ExecStream> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  try {
    const json = new TextEncoder().encode(JSON.stringify(body));
    const head = new TextEncoder().encode(
      `POST ${path} HTTP/1.1\r\nHost: podman\r\nContent-Type: application/json\r\n` +
        `Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: ${json.length}\r\n\r\n`,
    );
    await writeAll(conn, head);
    await writeAll(conn, json);
    const { status, rest, headText } = await readHead(conn);
    if (status !== 101 && status !== 200) {
      throw new ExecStartError(status, await readBody(conn, rest, headText));
    }
    return execStream(conn, rest, tty);
  } catch (error) {
    conn.close();
    throw error;
  }
}

function execStream(conn: Deno.UnixConn, first: Uint8Array, tty: boolean): ExecStream {
  const demuxer = new LogFrameDemuxer(tty ? "raw" : "framed");
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    conn.close();
  };
  const buffer = new Uint8Array(READ_BYTES);
  let pending = first.length > 0 ? demuxer.pushFrames(first.slice()) : [];
  const output = new ReadableStream<DataFrame>({
    async pull(controller) {
      while (pending.length === 0) {
        let n: number | null;
        try {
          n = closed ? null : await conn.read(buffer);
        } catch (error) {
          // Closed from this side (the session ended): the output simply ends.
          if (closed) n = null;
          else throw error;
        }
        if (n === null) return controller.close();
        // Each frame owns its bytes: the read buffer is reused.
        pending = demuxer.pushFrames(buffer.slice(0, n));
      }
      for (const frame of pending.splice(0)) controller.enqueue(frame);
    },
    cancel: close,
  }, { highWaterMark: 0 });
  return {
    output,
    write: (data) => writeAll(conn, data),
    closeStdin: () => conn.closeWrite(),
    close,
  };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
}

/** Reads up to the end of the answer's head: its status, head text and the bytes after it. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ status: number; headText: string; rest: Uint8Array }> {
  let got: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  while (true) {
    const end = indexOf(got, HEAD_END);
    if (end !== -1) {
      const headText = new TextDecoder().decode(got.subarray(0, end));
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1]);
      if (!Number.isInteger(status)) throw new ExecStartError(0, headText.slice(0, 200));
      return { status, headText, rest: got.subarray(end + HEAD_END.length) };
    }
    if (got.length > MAX_HEAD_BYTES) throw new ExecStartError(0, "an answer head over 16 KiB");
    const n = await conn.read(buffer);
    if (n === null) throw new ExecStartError(0, "Podman closed the connection without answering");
    got = concat([got, buffer.subarray(0, n)]);
  }
}

/** The error body after the head (Content-Length, else up to the close), for the message. */
async function readBody(conn: Deno.Conn, rest: Uint8Array, headText: string): Promise<string> {
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headText)?.[1] ?? NaN);
  const parts = [rest];
  let size = rest.length;
  const buffer = new Uint8Array(4096);
  while (!(size >= length) && size < MAX_HEAD_BYTES) {
    const n = await conn.read(buffer);
    if (n === null) break;
    parts.push(buffer.slice(0, n));
    size += n;
  }
  const text = new TextDecoder().decode(concat(parts));
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    return typeof message === "string" ? message : text;
  } catch {
    return text;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
