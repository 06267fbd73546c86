import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { headers } from "@nats-io/nats-core";
import {
  FRAME_HEADER,
  MIN_CREDIT,
  SESSION_IDLE_MS,
  SESSION_KEEPALIVE_MS,
  sessionSubject,
} from "../../core/mod.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { testConnection } from "../../testing/nats.ts";
import { FakeClock } from "../../testing/fake_clock.ts";
import { eventually } from "../../testing/eventually.ts";
import { SessionClient } from "./session_client.ts";

const SESSION = "abcdef0123456789";
const OUT = sessionSubject("pi-1", "mia-1", SESSION, "out");
const CTL = sessionSubject("pi-1", "mia-1", SESSION, "ctl");

/**
 * A nats-server, the device's connection (recording what it hears on `ctl`) and a session
 * client on the requester's, subscribed before anything is sent.
 */
async function openSession() {
  const ns = await startNatsServer();
  const device = await testConnection(ns.url);
  const requester = await testConnection(ns.url);
  const heard: unknown[] = [];
  device.subscribe(CTL, { callback: (_e, m) => void heard.push(m.json()) });
  await device.flush();
  const clock = new FakeClock();
  const client = new SessionClient(requester, {
    deviceId: "pi-1",
    principal: "mia-1",
    sessionId: SESSION,
    window: MIN_CREDIT,
    clock,
  });
  await requester.flush();
  return {
    device,
    heard,
    clock,
    client,
    async [Symbol.asyncDispose]() {
      await requester.close();
      await device.close();
      await ns[Symbol.asyncDispose]();
    },
  };
}

Deno.test("SessionClient yields data then the end, granting credit as the caller consumes", async () => {
  await using session = await openSession();
  const { device, heard, client } = session;
  const frame = new Uint8Array(MIN_CREDIT / 4);
  for (let i = 0; i < 3; i++) device.publish(OUT, frame);
  const keepalive = headers();
  keepalive.set(FRAME_HEADER, "keepalive");
  device.publish(OUT, new Uint8Array(0), { headers: keepalive });
  const end = headers();
  end.set(FRAME_HEADER, "end");
  device.publish(OUT, JSON.stringify({ reason: "done", message: "all was sent", bytes: 3 }), {
    headers: end,
  });
  const events = [];
  for await (const event of client.events()) {
    events.push(event);
    if ("data" in event) client.consumed(event.data.length);
  }
  assert.equal(events.length, 4, "three data frames (the keepalive is not data), then the end");
  assert.deepEqual(events[3], { end: { reason: "done", message: "all was sent", bytes: 3 } });
  // Half a window consumed: one grant, up to what was consumed plus a window.
  await eventually("the grant", () => heard.length === 1);
  assert.deepEqual(heard, [{ type: "credit", upTo: MIN_CREDIT / 2 + MIN_CREDIT }]);
});

Deno.test("SessionClient repeats its grant as a keepalive, cancels, and ends a silent session", async () => {
  await using session = await openSession();
  const { heard, clock, client } = session;
  const events = client.events();
  const next = events.next();
  await clock.advance(SESSION_KEEPALIVE_MS);
  client.cancel();
  await eventually("a keepalive grant and the cancel", () => heard.length === 2);
  assert.deepEqual(heard, [{ type: "credit", upTo: MIN_CREDIT }, { type: "cancel" }]);
  await clock.advance(SESSION_IDLE_MS);
  const { value } = await next;
  assert.deepEqual(value, {
    end: {
      reason: "silent",
      message: "device pi-1 said nothing for 30 s: it went offline or its agent stopped",
      bytes: 0,
    },
  });
  assert.equal((await events.next()).done, true);
});

Deno.test("SessionClient keeps no frame once the caller took it", async () => {
  await using session = await openSession();
  const { device, client } = session;
  const events = client.events();
  const taken: WeakRef<Uint8Array>[] = [];
  for (let i = 0; i < 20; i++) {
    device.publish(OUT, new Uint8Array(1024));
    const { value } = await events.next();
    assert.ok(value !== undefined && "data" in value);
    client.consumed(value.data.length);
    taken.push(new WeakRef(value.data));
  }
  // A collection now, to tell what the open session still reaches from what is only garbage.
  setFlagsFromString("--expose-gc");
  runInNewContext("gc")();
  const kept = taken.filter((frame) => frame.deref() !== undefined).length;
  assert.ok(kept <= 1, `the session still holds ${kept} of the 20 frames the caller took`);
  await events.return(undefined);
});
