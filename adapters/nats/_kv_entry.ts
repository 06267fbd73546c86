/**
 * A KV entry as a consumer delivers it (a put, or a DEL/PURGE marker), turned into a
 * {@link WatchEvent}. Private to the NATS adapter.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { WatchEvent } from "./kv_watch.ts";

const KV_OPERATION = "KV-Operation";
/** nats-server 2.11+ writes markers for per-message TTLs instead of KV-Operation. */
const MARKER_REASON = "Nats-Marker-Reason";

/** The entry `m` of a bucket whose subjects start with `prefix` (`$KV.<bucket>.`). */
export function kvEntryEvent(
  m: JsMsg,
  prefix: string,
): Extract<WatchEvent, { type: "put" | "delete" }> {
  const key = m.subject.startsWith(prefix) ? m.subject.slice(prefix.length) : m.subject;
  const operation = kvOperation(m);
  // The stream's timestamp, from the delivery's reply subject (not the time it arrived).
  const created = m.time.getTime();
  // A copy: the client hands out Node Buffers that can share a larger read buffer.
  if (operation === "PUT") {
    return { type: "put", key, value: new Uint8Array(m.data), revision: m.seq, created };
  }
  return { type: "delete", key, revision: m.seq, created, operation };
}

function kvOperation(m: JsMsg): "PUT" | "DEL" | "PURGE" {
  const marker = m.headers?.get(MARKER_REASON) ?? "";
  if (marker === "MaxAge" || marker === "Purge") return "PURGE";
  if (marker === "Remove") return "DEL";
  const op = m.headers?.get(KV_OPERATION) ?? "";
  return op === "DEL" || op === "PURGE" ? op : "PUT";
}
