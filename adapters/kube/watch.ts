/**
 * Reads a Kubernetes watch response: one JSON event per line. `ERROR` events become
 * thrown {@linkcode KubeApiError}s ({@linkcode KubeGoneError} for 410), a cleanly closed
 * stream ends the iteration, a dropped connection is a {@linkcode KubeUnavailableError}.
 */

import type { KubeApiError, KubeStatus, KubeUnavailableError } from "./errors.ts";
import { errorMessage } from "../../core/errors.ts";
import type { WatchEvent, WatchEventType } from "./types.ts";

/** How {@linkcode readWatchEvents} turns failures into the adapter's errors. */
export interface WatchStreamContext {
  /** Aborting ends the iteration quietly. */
  signal: AbortSignal;
  /** The error for an `ERROR` event's Status (410 must give a `KubeGoneError`). */
  errorFor(status: KubeStatus): KubeApiError;
  /** The error for a connection that broke mid-stream. */
  lost(reason: string, cause: unknown): KubeUnavailableError;
  /**
   * Nothing received for this long means the connection is dead even if no error says so
   * (seen after an API server was killed: a read that never returned for 5 minutes). Set it
   * beyond the watch's server-side timeout, which always ends a healthy watch first.
   */
  idleTimeoutMs?: number;
}

const EVENT_TYPES: ReadonlySet<string> = new Set<WatchEventType>([
  "ADDED",
  "MODIFIED",
  "DELETED",
  "BOOKMARK",
]);

/**
 * Yields the events of a watch response body until the server closes it, the connection
 * breaks (thrown) or `context.signal` aborts (quiet end). Leaving the loop early cancels
 * the body.
 */
export async function* readWatchEvents<T>(
  body: ReadableStream<Uint8Array>,
  context: WatchStreamContext,
): AsyncGenerator<WatchEvent<T>, void, undefined> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      let chunk: ReadableStreamReadResult<string> | "idle";
      try {
        chunk = await readWithin(reader, context.idleTimeoutMs);
      } catch (err) {
        if (context.signal.aborted) return;
        throw context.lost(`the watch connection broke (${errorMessage(err)})`, err);
      }
      if (chunk === "idle") {
        throw context.lost(
          `the watch sent nothing for ${context.idleTimeoutMs! / 1000} s; the connection is dead`,
          undefined,
        );
      }
      if (chunk.done) {
        const rest = buffer.trim();
        if (rest !== "") {
          const event = parseLine<T>(rest, context);
          if (event) yield event;
        }
        return;
      }
      buffer += chunk.value;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line === "") continue;
        const event = parseLine<T>(line, context);
        if (event) yield event;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

async function readWithin<T>(
  reader: ReadableStreamDefaultReader<T>,
  ms: number | undefined,
): Promise<ReadableStreamReadResult<T> | "idle"> {
  if (ms === undefined) return await reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<"idle">((resolve) => timer = setTimeout(() => resolve("idle"), ms));
  try {
    // A read left pending by "idle" ends when the caller cancels the reader.
    return await Promise.race([reader.read(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

interface RawEvent {
  type?: unknown;
  object?: unknown;
}

function parseLine<T>(line: string, context: WatchStreamContext): WatchEvent<T> | undefined {
  let raw: RawEvent;
  try {
    raw = JSON.parse(line) as RawEvent;
  } catch (err) {
    throw context.lost(`the watch sent a line that is not JSON: ${line.slice(0, 120)}`, err);
  }
  if (raw.type === "ERROR") {
    const status =
      (typeof raw.object === "object" && raw.object !== null ? raw.object : {}) as KubeStatus;
    throw context.errorFor(status);
  }
  if (typeof raw.type !== "string" || !EVENT_TYPES.has(raw.type)) return undefined;
  return { type: raw.type as WatchEventType, object: raw.object as T };
}
