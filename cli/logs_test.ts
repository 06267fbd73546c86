import assert from "node:assert/strict";
import { endMessage, prefixLines } from "./logs.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("prefixLines() puts the device id before every line", () => {
  assert.equal(dec.decode(prefixLines(enc.encode("a\nb\n"), "pi-1 | ")), "pi-1 | a\npi-1 | b\n");
  assert.equal(dec.decode(prefixLines(enc.encode("a\nb"), "x ")), "x a\nx b");
  assert.equal(dec.decode(prefixLines(enc.encode("a\n"), "")), "a\n");
  assert.equal(prefixLines(new Uint8Array(0), "x ").length, 0);
});

Deno.test("endMessage() says nothing of an end that was asked for, and names the rest", () => {
  assert.equal(
    endMessage("pi-1", { reason: "done", message: "all was sent", bytes: 1 }),
    undefined,
  );
  assert.equal(endMessage("pi-1", { reason: "cancelled", message: "", bytes: 1 }), undefined);
  assert.equal(
    endMessage("pi-1", {
      reason: "going-away",
      message: "the agent on pi-1 is stopping",
      bytes: 1,
    }),
    "device pi-1 ended the logs: its agent is stopping (the agent on pi-1 is stopping)",
  );
  assert.match(
    endMessage("pi-1", { reason: "limit", message: "bound of 10 bytes", bytes: 10 })!,
    /--tail or --since/,
  );
  assert.equal(
    endMessage("pi-1", {
      reason: "silent",
      message: "device pi-1 said nothing for 30 s",
      bytes: 0,
    }),
    "device pi-1 said nothing for 30 s",
  );
});
