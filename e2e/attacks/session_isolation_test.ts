/**
 * Attacks on device sessions (issue 14, item 2: logs; DESIGN.md §9 "Sessions"), on a real
 * nats-server with users issued by the real auth callout. Session subjects carry the opener's
 * principal as a token, `device-sessions.<deviceId>.<principal>.<sessionId>.<channel>`, so the
 * broker can keep each person to the sessions it opened and each device to its own: another
 * maintainer cannot read or cancel someone's session, a viewer cannot open one, and a device
 * cannot write into another device's sessions. Each attack fails and the genuine session goes on.
 */
import assert from "node:assert/strict";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { principalOf, sessionSubject } from "../../core/mod.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { eventually } from "../../testing/eventually.ts";
import { denied, refused } from "./_refused.ts";

/** The issuer of the fixture's tokens (testing/callout.ts). */
const ISSUER = "https://idp.test/realms/fleet";
const SESSION = "0123456789abcdef0123456789abcdef";

/** Messages a subscription got, or the error that ended it. */
function collect(sub: Subscription) {
  const got = { data: [] as string[], error: undefined as unknown };
  void (async () => {
    try {
      for await (const m of sub) got.data.push(m.string());
    } catch (error) {
      got.error = error;
    }
  })();
  return got;
}

/** Asserts the broker refuses `subject` to `nc` as a subscription. */
async function subscriptionRefused(what: string, nc: NatsConnection, subject: string) {
  const got = collect(nc.subscribe(subject));
  await eventually(`${what} to be refused`, () => got.error !== undefined, 10_000);
  assert.ok(denied(got.error), `${what}: expected a permission violation, got ${got.error}`);
}

Deno.test("Sessions: only the opener reads and steers a session, only its device writes it", async () => {
  await using t = await startCalloutFixture(false);
  const mia = principalOf(ISSUER, "mia");
  const bob = principalOf(ISSUER, "bob");
  const maintainer = await t.connectAs(await t.mint("mia", ["fleet-maintainer"]));
  const other = await t.connectAs(await t.mint("max", ["fleet-maintainer"]));
  const viewer = await t.connectAs(await t.mint("bob", ["fleet-viewer"]));
  const devA = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
  const devB = await t.connectAs(await t.mint("dev-b", ["fleet-device"]), "dev-b");
  const subject = (channel: "in" | "out" | "ctl", who = mia) =>
    sessionSubject("dev-a", who, SESSION, channel);
  try {
    // The genuine session: dev-a hears mia's control, mia reads dev-a's data.
    const ctl = collect(devA.subscribe(`device-sessions.dev-a.*.*.ctl`));
    const out = collect(maintainer.subscribe(subject("out")));
    await Promise.all([devA.flush(), maintainer.flush()]);
    maintainer.publish(subject("ctl"), JSON.stringify({ type: "credit", upTo: 65536 }));
    devA.publish(subject("out"), "line 1\n");
    await eventually(
      "the genuine session to flow",
      () => ctl.data.length === 1 && out.data.length === 1,
    );

    // Another maintainer: cannot read mia's session, nor any session of dev-a, nor cancel it.
    await subscriptionRefused("max reads mia's session", other, subject("out"));
    await subscriptionRefused("max reads dev-a's sessions", other, "device-sessions.dev-a.>");
    await subscriptionRefused("max reads every out", other, "device-sessions.*.*.*.out");
    await refused(
      "max cancels mia's session",
      () => other.request(subject("ctl"), JSON.stringify({ type: "cancel" }), { timeout: 5_000 }),
    );
    await refused(
      "max writes into mia's session",
      () => other.request(subject("in"), "rm -rf /", { timeout: 5_000 }),
    );
    await refused(
      "mia forges dev-a's data in her own session",
      () => maintainer.request(subject("out"), "forged\n", { timeout: 5_000 }),
    );

    // A viewer may not ask for logs, nor use a session even in its own name.
    await refused(
      "a viewer asks dev-a for logs",
      () => viewer.request(`device-commands.dev-a.logs.${bob}`, "{}", { timeout: 5_000 }),
    );
    await subscriptionRefused("a viewer reads a session", viewer, subject("out", bob));
    await refused(
      "a viewer steers a session",
      () => viewer.request(subject("ctl", bob), "{}", { timeout: 5_000 }),
    );

    // dev-b: cannot write into, read or steer dev-a's sessions.
    await refused(
      "dev-b writes into mia's session with dev-a",
      () => devB.request(subject("out"), "forged\n", { timeout: 5_000 }),
    );
    await subscriptionRefused("dev-b reads dev-a's control", devB, "device-sessions.dev-a.>");
    await refused(
      "dev-b cancels mia's session with dev-a",
      () => devB.request(subject("ctl"), JSON.stringify({ type: "cancel" }), { timeout: 5_000 }),
    );

    // Nothing got through; the session goes on.
    devA.publish(subject("out"), "line 2\n");
    maintainer.publish(subject("ctl"), JSON.stringify({ type: "credit", upTo: 131072 }));
    await eventually("the session to go on", () => out.data.length === 2 && ctl.data.length === 2);
    assert.deepEqual(out.data, ["line 1\n", "line 2\n"]);
    assert.ok(ctl.data.every((d) => d.includes("credit")), `dev-a heard only mia: ${ctl.data}`);
  } finally {
    for (const nc of [maintainer, other, viewer, devA, devB]) {
      if (!nc.isClosed()) await nc.close();
    }
  }
});
