/**
 * `fleet logs` output: each device's lines, prefixed with its id when several devices
 * interleave, and what to say when a session ends. Pure.
 * @module
 */
import type { SessionEnd } from "../core/device_sessions.ts";

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/**
 * `data` (whole lines, as a device sends them) with `prefix` before each line; `data` itself
 * when there is no prefix.
 */
export function prefixLines(data: Uint8Array, prefix: string): Uint8Array {
  if (prefix === "") return data;
  const p = encoder.encode(prefix);
  let lines = 0;
  for (const b of data) if (b === NEWLINE) lines++;
  const partial = data.length > 0 && data[data.length - 1] !== NEWLINE ? 1 : 0;
  const out = new Uint8Array(data.length + (lines + partial) * p.length);
  let at = 0;
  let start = 0;
  while (start < data.length) {
    const nl = data.indexOf(NEWLINE, start);
    const end = nl === -1 ? data.length : nl + 1;
    out.set(p, at);
    at += p.length;
    out.set(data.subarray(start, end), at);
    at += end - start;
    start = end;
  }
  return out;
}

/**
 * What to tell a person when `deviceId`'s session ended, or undefined when it ended as asked
 * (all sent, or cancelled by this side).
 */
export function endMessage(deviceId: string, end: SessionEnd): string | undefined {
  switch (end.reason) {
    case "done":
    case "cancelled":
      return undefined;
    case "going-away":
      return `device ${deviceId} ended the logs: its agent is stopping (${end.message})`;
    case "silent":
      return end.message;
    case "limit":
      return `device ${deviceId} ended the logs at its size bound: ${end.message}; ` +
        `narrow the request with --tail or --since`;
    default:
      return `device ${deviceId} ended the logs (${end.reason}): ${end.message}`;
  }
}
