/**
 * Logs from devices (issue 14, item 2), on real parts: the test OpenID provider, nats-server
 * with the auth callout, `fleet operator run` and two `fleet agent run` processes, podman. A
 * container prints 5 MB and then a tick a second; a field engineer reads it with `fleet logs`:
 * all of it, `--tail`, `--since`, `--follow` picking up new lines, and two devices followed at
 * once. A reader that grants no more credit gets no more than it granted, counted on the wire;
 * a device going away mid-follow ends the follow with a clear message; a viewer is refused at
 * the broker; every session is in the audit trail.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  ContainerLabels,
  FRAME_HEADER,
  MANAGED_BY,
  MIN_CREDIT,
  newSessionId,
  sessionSubject,
} from "../core/mod.ts";
import { installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { principalInbox } from "../adapters/oidc/mod.ts";
import { eventually } from "../testing/eventually.ts";
import { fleet, FleetProcess } from "./_helpers.ts";
import { labDeployment, startDeviceRig, type StoredRecord } from "./_device_rig.ts";
import { Interactive } from "./_interactive.ts";
import { story, testLogger } from "./_story.ts";

const STEP_MS = 120_000;
/** Lines of the bulk: `line NNNNN ` and 1000 zeros, 1012 bytes with the newline. */
const BULK_LINES = 5120;
const LINE_BYTES = 1012;

/** A container that prints 5 MB, then a tick a second. */
const CHATTY = labDeployment(
  "chatty",
  `
        - name: talk
          image: localhost/fleet-test:v1
          restartPolicy: unless-stopped
          command:
            - /bin/sh
            - -c
            - >-
              trap 'exit 0' TERM;
              i=0; while [ $i -lt ${BULK_LINES} ]; do printf 'line %05d %01000d\\n' $i 0; i=$((i+1)); done;
              echo bulk-done;
              n=0; while true; do n=$((n+1)); echo tick $n; sleep 1; done
`,
);

/** The numbers of the `tick N` lines in `text` (after an optional prefix). */
function ticks(text: string, prefix = ""): number[] {
  return [...text.matchAll(new RegExp(`^${prefix}tick (\\d+)$`, "gm"))].map((m) => Number(m[1]));
}

story(
  "device logs: 5 MB, tail, since, follow, two devices, credit on the wire, a device going away, audited",
  { deadlineMs: 12 * 60_000 },
  async () => {
    installConnectionResetGuard(testLogger());
    await using rig = await startDeviceRig("fleet-logs-", {
      "logs-pi-1": "device",
      "logs-pi-2": "device",
      val: "viewer",
      moe: "maintainer",
      abe: "admin",
    });
    const { podman, idp, edge } = rig;
    const flags = {
      viewer: await rig.flagsOf("val"),
      maintainer: await rig.flagsOf("moe"),
      admin: await rig.flagsOf("abe"),
    };
    const talk = async (deviceId: string) =>
      (await podman.listContainers({
        [ContainerLabels.managedBy]: MANAGED_BY,
        [ContainerLabels.deviceId]: deviceId,
      }))[0];
    const raw: NatsConnection[] = [];
    const log = testLogger();
    try {
      await using _operator = new FleetProcess("operator", [
        ...["operator", "run", ...await rig.flagsOf("fleet-operator")],
        "--allow-unbound-namespaces",
      ]);
      await using agent1 = new FleetProcess("agent-1", [
        ...["agent", "run", "--config", await rig.agentConfig("logs-pi-1")],
      ]);
      let agent2: FleetProcess | undefined = new FleetProcess("agent-2", [
        ...["agent", "run", "--config", await rig.agentConfig("logs-pi-2")],
      ]);
      try {
        await rig.deploy(["logs-pi-1", "logs-pi-2"], flags, CHATTY);
        for (const id of ["logs-pi-1", "logs-pi-2"]) {
          await eventually(`chatty to print its bulk on ${id}`, async () => {
            const c = await talk(id);
            return c?.state === "running" &&
              (await podman.containerLogs(c.id, { lines: 3, maxBytes: 1000 })).includes("tick");
          }, STEP_MS);
        }

        // All of it: 5 MB, every line whole and in order.
        const started = performance.now();
        const all = await fleet(["logs", "logs-pi-1", "chatty", ...flags.maintainer]);
        const seconds = (performance.now() - started) / 1000;
        assert.equal(all.code, 0, all.stderr);
        const bulk = all.stdout.split("\n").filter((l) => l.startsWith("line "));
        assert.equal(bulk.length, BULK_LINES);
        assert.ok(
          bulk.every((l, i) => l === `line ${String(i).padStart(5, "0")} ${"0".repeat(1000)}`),
        );
        assert.ok(all.stdout.includes("\nbulk-done\n"));
        const megabytes = all.stdout.length / 1e6;
        log.info(
          `fleet logs logs-pi-1 chatty: ${megabytes.toFixed(1)} MB in ${seconds.toFixed(1)} s, ` +
            `process start included (${(megabytes / seconds).toFixed(1)} MB/s)`,
        );

        // A few ticks, written seconds after the bulk.
        await eventually("six ticks on logs-pi-1", async () => {
          const last = await podman.containerLogs((await talk("logs-pi-1"))!.id, {
            lines: 1,
            maxBytes: 100,
          });
          return (ticks(last)[0] ?? 0) >= 6;
        }, STEP_MS);

        // --tail: the last lines only.
        const tail = await fleet([
          "logs",
          "logs-pi-1",
          "chatty",
          "--tail",
          "3",
          ...flags.maintainer,
        ]);
        assert.equal(tail.code, 0, tail.stderr);
        assert.equal(tail.stdout.split("\n").length, 4, tail.stdout);
        assert.equal(ticks(tail.stdout).length, 3, tail.stdout);
        log.info(`fleet logs logs-pi-1 chatty --tail 3:\n${tail.stdout}`);

        // --since: the bulk was written before, the ticks since.
        const since = await fleet([
          ...["logs", "logs-pi-1", "chatty", "--since", "3s", "--timestamps"],
          ...flags.maintainer,
        ]);
        assert.equal(since.code, 0, since.stderr);
        assert.ok(!since.stdout.includes("line 0"), "no bulk line in the last 3 s");
        assert.match(since.stdout, /^\d{4}-\d{2}-\d{2}T\S+ tick \d+$/m);
        log.info(`fleet logs logs-pi-1 chatty --since 3s --timestamps:\n${since.stdout}`);

        // --follow picks up lines written after it started; Ctrl-C ends it cleanly.
        {
          await using follow = Interactive.fleet([
            "logs",
            "logs-pi-1",
            "chatty",
            "--tail",
            "1",
            "--follow",
            ...flags.maintainer,
          ]);
          const seen = await eventually("two new ticks", () => {
            const n = ticks(follow.stdout);
            return n.length >= 3 ? n : undefined;
          }, STEP_MS);
          assert.deepEqual(seen.slice(1, 3), [seen[0]! + 1, seen[0]! + 2]);
          follow.interrupt();
          assert.equal(await follow.exit(), 0, follow.stderr);
        }

        // Two devices at once, each line after its device id.
        {
          await using both = Interactive.fleet([
            "logs",
            "-l",
            "site=lab",
            "chatty",
            "--tail",
            "1",
            "--follow",
            ...flags.maintainer,
          ]);
          await eventually(
            "ticks of both devices",
            () =>
              ticks(both.stdout, "logs-pi-1 \\| ").length >= 2 &&
              ticks(both.stdout, "logs-pi-2 \\| ").length >= 2,
            STEP_MS,
          );
          both.interrupt();
          assert.equal(await both.exit(), 0, both.stderr);
          log.info(`fleet logs -l site=lab chatty --follow:\n${both.stdout.slice(0, 400)}`);
        }

        // A reader that stops granting: the device sends no byte beyond the credit, on the wire.
        {
          const token = await idp.mintToken(rig.users.moe!);
          const nc = await connect({
            servers: edge.ns.url,
            token,
            reconnect: false,
            inboxPrefix: principalInbox(token),
          });
          raw.push(nc);
          const principal = principalInbox(token).slice("_INBOX_p_".length);
          const sessionId = newSessionId();
          const out = nc.subscribe(sessionSubject("logs-pi-1", principal, sessionId, "out"));
          const ctl = sessionSubject("logs-pi-1", principal, sessionId, "ctl");
          let granted = MIN_CREDIT;
          let received = 0;
          let end = "";
          const reading = (async () => {
            for await (const m of out) {
              const frame = m.headers?.get(FRAME_HEADER);
              if (frame === "end") {
                end = m.string();
                return;
              }
              if (frame) continue;
              received += m.data.length;
              assert.ok(received <= granted, `received ${received} with ${granted} granted`);
            }
          })();
          const reply = await nc.request(
            `device-commands.logs-pi-1.logs.${principal}`,
            JSON.stringify({
              requestId: "slow-1",
              sessionId,
              namespace: "default",
              deployment: "chatty",
              credit: MIN_CREDIT,
            }),
            { timeout: 10_000 },
          );
          assert.equal(reply.json<{ ok: boolean }>().ok, true, reply.string());
          // 64 whole lines fit 64 KiB; the 65th waits for credit however long it takes.
          await eventually("the first credit's worth", () => received === 64 * LINE_BYTES, STEP_MS);
          // A keepalive grant of the same offset brings nothing more; a round trip through the
          // device (a ping) shows it has heard the grant and still sent nothing.
          nc.publish(ctl, JSON.stringify({ type: "credit", upTo: granted }));
          await nc.request(
            `device-commands.logs-pi-1.ping.${principal}`,
            JSON.stringify({ requestId: "slow-ping" }),
            { timeout: 10_000 },
          );
          await nc.flush();
          assert.equal(received, 64 * LINE_BYTES, "nothing beyond the credit");
          granted += 10 * MIN_CREDIT;
          nc.publish(ctl, JSON.stringify({ type: "credit", upTo: granted }));
          await eventually(
            "the next grant's worth",
            () => received === Math.floor(granted / LINE_BYTES) * LINE_BYTES,
            STEP_MS,
          );
          nc.publish(ctl, JSON.stringify({ type: "cancel" }));
          await reading;
          assert.equal(JSON.parse(end).reason, "cancelled");
        }

        // A viewer may not read logs: the broker refuses, the CLI says so.
        const viewer = await fleet(["logs", "logs-pi-1", "chatty", ...flags.viewer]);
        assert.equal(viewer.code, 1);
        assert.match(viewer.stderr, /your role does not allow logs on devices: the broker refused/);

        // logs-pi-2 goes away mid-follow: the follow ends saying so.
        {
          await using follow = Interactive.fleet([
            "logs",
            "logs-pi-2",
            "chatty",
            "--tail",
            "1",
            "--follow",
            ...flags.maintainer,
          ]);
          await eventually(
            "a tick from logs-pi-2",
            () => ticks(follow.stdout).length >= 1,
            STEP_MS,
          );
          await agent2[Symbol.asyncDispose]();
          agent2 = undefined;
          assert.equal(await follow.exit(), 1);
          assert.match(
            follow.stderr,
            /device logs-pi-2 ended the logs: its agent is stopping \(the agent on logs-pi-2 is stopping\)/,
          );
          log.info(`fleet logs logs-pi-2 chatty --follow, its agent stopped:\n${follow.stderr}`);
        }
        const offline = await fleet(["logs", "logs-pi-2", "chatty", ...flags.maintainer]);
        assert.equal(offline.code, 1);
        assert.match(offline.stderr, /device logs-pi-2 is offline \(last heartbeat \d+s ago\)/);

        // --agent on a device whose agent is not a systemd unit: a clear refusal or its journal.
        const journal = await fleet([
          "logs",
          "logs-pi-1",
          "--agent",
          "--tail",
          "5",
          ...flags.maintainer,
        ]);
        assert.ok(
          journal.code === 0 || /device logs-pi-1 refused logs: journalctl/.test(journal.stderr),
          journal.stderr,
        );

        // The audit trail: each session with who, what, how it ended and its bytes.
        const sessions = (records: StoredRecord[]) => records.filter((x) => x.kind === "session");
        const audit = sessions(
          await rig.audit("logs-pi-1", flags.viewer, (records) => sessions(records).length >= 5),
        );
        assert.ok(
          audit.some((r) =>
            r.verb === "logs" && r.reason?.startsWith("done") && r.bytes! > BULK_LINES * LINE_BYTES
          ),
          "the 5 MB read",
        );
        assert.ok(
          audit.some((r) => r.reason?.startsWith("cancelled") && r.arguments.follow === "true"),
        );
        const text = await fleet(["audit", "--device", "logs-pi-1", ...flags.viewer]);
        log.info(`fleet audit --device logs-pi-1:\n${text.stdout}`);
      } finally {
        await agent2?.[Symbol.asyncDispose]();
      }
      assert.ok(agent1.lines.length > 0);
    } finally {
      for (const nc of raw) if (!nc.isClosed()) await nc.close();
      for (const id of ["logs-pi-1", "logs-pi-2"]) {
        for (const c of await podman.listContainers({ [ContainerLabels.deviceId]: id })) {
          await podman.removeContainer(c.id);
        }
      }
    }
  },
);
