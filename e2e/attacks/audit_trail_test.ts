/**
 * Attacks on the audit trail of device commands (issue 14, item 4), on a real nats-server with
 * users issued by the real auth callout: no one writes a record in a device's name but that
 * device, no person writes one at all, no one deletes or purges the trail, and no reader can make
 * the server deliver records onto a command subject (a consumer's creator chooses where the
 * server publishes). Each attack fails and the genuine records stay.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { AUDIT_STREAM, type AuditRecord, auditSubject, principalOf } from "../../core/mod.ts";
import { ensureAuditStream, publishAudit, readAudit } from "../../adapters/nats/mod.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { refused } from "./_refused.ts";

/** The issuer of the fixture's tokens (testing/callout.ts). */
const ISSUER = "https://idp.test/realms/fleet";

function record(deviceId: string, principal: string, verb: string): AuditRecord {
  return {
    kind: "command",
    deviceId,
    principal,
    verb,
    arguments: {},
    startedAt: Date.now(),
    durationMs: 3,
    outcome: "ok",
  };
}

Deno.test("Audit trail: only a device writes its own records, and no one rewrites or redirects them", async () => {
  await using t = await startCalloutFixture(false);
  const operator = await t.connectAs(await t.mint("fleet-operator", ["fleet-operator"]));
  const viewer = await t.connectAs(await t.mint("bob", ["fleet-viewer"]));
  const maintainer = await t.connectAs(await t.mint("mia", ["fleet-maintainer"]));
  const devA = await t.connectAs(await t.mint("dev-a", ["fleet-device"]), "dev-a");
  const devB = await t.connectAs(await t.mint("dev-b", ["fleet-device"]), "dev-b");
  const mia = principalOf(ISSUER, "mia");
  try {
    // The operator keeps the stream; a device writes its own record; a viewer reads it.
    await ensureAuditStream(operator, 1);
    await publishAudit(devA, record("dev-a", mia, "restart"));
    const read = () => readAudit(viewer, { sinceMs: 0, limit: 100 });
    assert.deepEqual((await read()).map((r) => r.record.verb), ["restart"]);

    // Another device, a person, the operator: no record in dev-a's name.
    await refused(
      "dev-b writes a record of dev-a",
      () => publishAudit(devB, record("dev-a", mia, "exec")),
    );
    await refused(
      "a maintainer writes a record",
      () => publishAudit(maintainer, record("dev-a", "someone-else", "exec")),
    );
    await refused(
      "the operator writes a record",
      () => publishAudit(operator, record("dev-a", mia, "exec")),
    );

    // No one removes records: neither a person nor the operator may purge, delete or edit.
    for (const [who, nc] of [["maintainer", maintainer], ["operator", operator]] as const) {
      for (const api of ["PURGE", "DELETE", "UPDATE"]) {
        await refused(
          `${who} calls STREAM.${api} on the trail`,
          () => nc.request(`$JS.API.STREAM.${api}.${AUDIT_STREAM}`, "{}", { timeout: 5_000 }),
        );
      }
      await refused(
        `${who} deletes one record`,
        () =>
          nc.request(`$JS.API.STREAM.MSG.DELETE.${AUDIT_STREAM}`, JSON.stringify({ seq: 1 }), {
            timeout: 5_000,
          }),
      );
    }

    // A reader may not create a consumer: its deliver subject could be a command subject, and
    // the server would publish the records there in no one's name.
    const config = {
      name: "forged",
      deliver_subject: `device-commands.dev-a.restart.${mia}`,
      ack_policy: "none",
    };
    await refused(
      "a viewer creates a consumer delivering onto dev-a's commands",
      () =>
        viewer.request(
          `$JS.API.CONSUMER.CREATE.${AUDIT_STREAM}.forged`,
          JSON.stringify({ stream_name: AUDIT_STREAM, config }),
          { timeout: 5_000 },
        ),
    );
    await refused("dev-b creates a consumer on the trail", () =>
      devB.request(
        `$JS.API.CONSUMER.CREATE.${AUDIT_STREAM}.forged`,
        JSON.stringify({ stream_name: AUDIT_STREAM, config }),
        { timeout: 5_000 },
      ));
    // Nor read it: the trail names who did what on every device.
    await refused("dev-b reads the trail", () => readAudit(devB, { sinceMs: 0, limit: 10 }));

    // The stream refuses deletes and purges itself, even to an admin-like API caller.
    const admin = await t.connectAs(await t.mint("ada", ["fleet-admin"]));
    try {
      const jsm = await jetstreamManager(admin, { checkAPI: false });
      await assert.rejects(() => jsm.streams.purge(AUDIT_STREAM), /purge not permitted|purge/i);
      await assert.rejects(() => jsm.streams.deleteMessage(AUDIT_STREAM, 1), /delete/i);
    } finally {
      await admin.close();
    }

    // What dev-a wrote is all there is.
    const records = await read();
    assert.deepEqual(records.map((r) => [r.record.deviceId, r.record.principal, r.record.verb]), [
      ["dev-a", mia, "restart"],
    ]);
    assert.equal(auditSubject("command", "dev-a"), `${AUDIT_STREAM}.command.dev-a`);
  } finally {
    for (const nc of [devA, devB, maintainer, viewer, operator]) {
      if (!nc.isClosed()) await nc.close();
    }
  }
});
