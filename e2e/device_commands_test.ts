/**
 * Reaching a device from the control plane (issue 14, items 1 and 4), on real parts: the test
 * OpenID provider, nats-server with the auth callout, `fleet operator run` and `fleet agent run`
 * as processes, podman. A field engineer pings, diagnoses, restarts and reconciles a device with
 * `fleet device ...`; every role gets exactly its verbs, each denial made by the broker; every
 * command is in `fleet audit`; an offline device and a busy one answer in plain words.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { ContainerLabels, deviceInboxPrefix, MANAGED_BY } from "../core/mod.ts";
import { installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { principalInbox } from "../adapters/oidc/mod.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { type MachineUser, startTestProvider } from "../testing/oidc_provider.ts";
import { startEdgeNats, writeAgentConfig, writeKeyFile } from "../testing/edge_nats.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { eventually } from "../testing/eventually.ts";
import { fleet, FleetProcess } from "./_helpers.ts";
import { denied } from "./attacks/_refused.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const STEP_MS = 120_000;
const VERBS = ["ping", "diag", "restart", "reconcile", "logs", "exec"] as const;

/** What each identity may ask a device, as DESIGN.md §9 says. */
const ALLOWED: Record<string, readonly string[]> = {
  viewer: ["ping"],
  maintainer: ["ping", "diag", "restart", "reconcile", "logs"],
  admin: VERBS,
  operator: [],
  device: [],
};

/** A TCP listener that accepts and never answers: a registry whose pull hangs. */
function blackHole() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    held,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of held) c.close();
      await accepting;
    },
  };
}

story(
  "device commands: ping, diag, restart and reconcile per role, audited, offline and busy devices",
  { deadlineMs: 12 * 60_000 },
  async () => {
    installConnectionResetGuard(testLogger());
    await using dir = await tempDir("fleet-commands-");
    await using idp = await startTestProvider({ accessTokenTtlSeconds: 600 });
    const add = (id: string, role: string) =>
      idp.addMachineUser({ id, roles: [role], ...(role === "device" ? { deviceId: id } : {}) });
    const users = {
      device: await add("cmd-pi-1", "device"),
      other: await add("cmd-pi-2", "device"),
      operator: await add("fleet-operator", "operator"),
      viewer: await add("vic", "viewer"),
      maintainer: await add("mia", "maintainer"),
      admin: await add("ada", "admin"),
    };
    await using edge = stopOnDeadline(await startEdgeNats(dir.path, idp, testLogger()));
    await using podmanService = stopOnDeadline(await startPodmanService());
    using podman = new PodmanClient({ socketPath: podmanService.socketPath });
    await ensureTestImage(podman, "v1");

    const nats = ["--nats-url", edge.ns.url];
    const as = async (user: MachineUser) => [
      ...nats,
      ...["--oidc-issuer", idp.issuer, "--oidc-client-id", user.clientId],
      ...["--oidc-key", await writeKeyFile(dir.path, user), "--oidc-audience", idp.audience],
    ];
    const flags = {
      viewer: await as(users.viewer),
      maintainer: await as(users.maintainer),
      admin: await as(users.admin),
    };
    const principal = async (user: MachineUser) =>
      principalInbox(await idp.mintToken(user)).slice("_INBOX_p_".length);
    const agentConfig = await writeAgentConfig(dir.path, {
      deviceId: "cmd-pi-1",
      urls: [edge.ns.url],
      idp,
      user: users.device,
      podmanSocket: podmanService.socketPath,
      stopTimeoutSeconds: 2,
    });
    const web = () =>
      podman.listContainers({
        [ContainerLabels.managedBy]: MANAGED_BY,
        [ContainerLabels.deviceId]: "cmd-pi-1",
        [ContainerLabels.namespace]: "default",
        [ContainerLabels.deployment]: "web",
      });
    const raw: NatsConnection[] = [];
    const connectAs = async (user: MachineUser, deviceId?: string) => {
      const token = await idp.mintToken(user);
      const nc = await connect({
        servers: edge.ns.url,
        token,
        reconnect: false,
        inboxPrefix: deviceId ? deviceInboxPrefix(deviceId) : principalInbox(token),
      });
      raw.push(nc);
      return nc;
    };
    try {
      await using _operator = new FleetProcess("operator", [
        ...["operator", "run", ...await as(users.operator)],
        "--allow-unbound-namespaces",
      ]);
      let agent: FleetProcess | undefined = new FleetProcess("agent", [
        ...["agent", "run", "--config", agentConfig],
      ]);
      try {
        await eventually("cmd-pi-1 to join", async () => {
          const r = await fleet(["get", "devices", ...flags.admin]);
          return /cmd-pi-1\s+yes/.test(r.stdout);
        }, STEP_MS);
        const label = await fleet(["device", "label", "cmd-pi-1", "site=edge", ...flags.admin]);
        assert.equal(label.code, 0, label.stderr);
        const applied = await fleet([
          ...["apply", "deployment", "--name", "web", "--selector", "site=edge"],
          ...["--image", "localhost/fleet-test:v1", ...flags.admin],
        ]);
        assert.equal(applied.code, 0, applied.stderr);
        const [running] = await eventually("web to run on cmd-pi-1", async () => {
          const found = await web();
          return found[0]?.state === "running" ? found : undefined;
        }, STEP_MS);

        // ping, as a viewer: who answered, how fast, its clock.
        const ping = await fleet(["device", "ping", "cmd-pi-1", ...flags.viewer]);
        assert.equal(ping.code, 0, ping.stderr);
        assert.match(ping.stdout, /^device cmd-pi-1 answered in \d+ ms\n {2}agent {5}0\.1\.0/);
        assert.match(ping.stdout, /clock {5}\S+Z \(in step with this machine\)/);
        const pingJson = await fleet(["device", "ping", "cmd-pi-1", "-o", "json", ...flags.viewer]);
        assert.equal(pingJson.code, 0, pingJson.stderr);
        const pinged = JSON.parse(pingJson.stdout);
        assert.equal(pinged.deviceId, "cmd-pi-1");
        assert.equal(typeof pinged.result.natsRttMs, "number");
        testLogger().info(`fleet device ping cmd-pi-1:\n${ping.stdout}`);

        // diag, as a maintainer: config without secrets, podman, the deployment.
        const diag = await fleet(["device", "diag", "cmd-pi-1", ...flags.maintainer]);
        assert.equal(diag.code, 0, diag.stderr);
        assert.match(diag.stdout, /podman {7}podman \d+\.\d+\.\d+ at /);
        assert.match(diag.stdout, /desired {6}1 deployment\(s\), read from NATS/);
        assert.match(diag.stdout, /default\s+web\s+1\s+Running/);
        assert.match(diag.stdout, /labels {7}site=edge/);
        const key = users.device.privateKeyJwk as { d?: string };
        assert.ok(key.d && !diag.stdout.includes(key.d), "diag shows no private key");
        testLogger().info(`fleet device diag cmd-pi-1:\n${diag.stdout}`);

        // restart, as a maintainer: in place, once per request id.
        const restart = (target: string, requestId: string) =>
          fleet([
            ...["device", "restart", "cmd-pi-1", target, "--request-id", requestId],
            ...flags.maintainer,
          ]);
        const restarted = await restart("web", "r-1");
        assert.equal(restarted.code, 0, restarted.stderr);
        assert.equal(
          restarted.stdout.trim(),
          `device cmd-pi-1 restarted web (${running!.id.slice(0, 12)})`,
        );
        const [afterRestart] = await web();
        assert.equal(afterRestart?.id, running!.id, "restarted in place, not recreated");
        assert.ok(afterRestart!.startedAt! > running!.startedAt!, "started again");
        const again = await restart("web", "r-1");
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /already restarted web .* nothing done again/);
        assert.equal((await web())[0]?.startedAt, afterRestart!.startedAt, "restarted once");
        const typo = await restart("wbe/web", "r-2");
        assert.equal(typo.code, 1);
        assert.match(
          typo.stderr,
          /device cmd-pi-1 refused restart: no container of deployment "wbe" in namespace "default" runs on this device/,
        );

        // reconcile, as a maintainer.
        const reconcile = await fleet(["device", "reconcile", "cmd-pi-1", ...flags.maintainer]);
        assert.equal(reconcile.code, 0, reconcile.stderr);
        assert.match(
          reconcile.stdout,
          /^device cmd-pi-1 ran a reconcile pass in \d+ ms \(pass \d+/,
        );

        // A viewer may not restart: the broker refuses, the CLI says so.
        const viewerRestart = await fleet([
          "device",
          "restart",
          "cmd-pi-1",
          "web",
          ...flags.viewer,
        ]);
        assert.equal(viewerRestart.code, 1);
        assert.match(
          viewerRestart.stderr,
          new RegExp(
            `your role does not allow restart on devices: the broker refused device-commands\\.cmd-pi-1\\.restart ` +
              `for principal ${await principal(users.viewer)}`,
          ),
        );

        let busyReconcileText = "";
        // The agent busy in a pass (a pull from a registry that never answers) still answers a
        // ping; a reconcile, which waits for a pass of its own, times out naming what was asked.
        {
          await using registry = blackHole();
          const slow = await fleet([
            ...["apply", "deployment", "--name", "slow", "--selector", "site=edge"],
            ...["--image", `127.0.0.1:${registry.port}/slow:1`, ...flags.admin],
          ]);
          assert.equal(slow.code, 0, slow.stderr);
          await eventually(
            "the agent to pull from the silent registry",
            () => registry.held.length > 0,
            STEP_MS,
          );
          const busyPing = await fleet(["device", "ping", "cmd-pi-1", ...flags.viewer]);
          assert.equal(busyPing.code, 0, busyPing.stderr);
          const busyReconcile = await fleet([
            ...["device", "reconcile", "cmd-pi-1", "--timeout", "2", ...flags.maintainer],
          ]);
          assert.equal(busyReconcile.code, 1);
          assert.match(
            busyReconcile.stderr,
            /device cmd-pi-1 did not answer reconcile within 2s: it is connected but busy/,
          );
          busyReconcileText = busyReconcile.stderr;
          const removed = await fleet(["delete", "deployment", "slow", ...flags.admin]);
          assert.equal(removed.code, 0, removed.stderr);
        }

        // The permission matrix, at the broker: every role × verb, in its own name.
        const identities = {
          viewer: await connectAs(users.viewer),
          maintainer: await connectAs(users.maintainer),
          admin: await connectAs(users.admin),
          operator: await connectAs(users.operator),
          device: await connectAs(users.other, "cmd-pi-2"),
        };
        const names = {
          viewer: await principal(users.viewer),
          maintainer: await principal(users.maintainer),
          admin: await principal(users.admin),
          operator: await principal(users.operator),
          device: "cmd-pi-2",
        };
        const table: string[] = [];
        for (const [role, nc] of Object.entries(identities)) {
          const row: string[] = [];
          for (const verb of VERBS) {
            const subject = `device-commands.cmd-pi-1.${verb}.${names[role as keyof typeof names]}`;
            // A restart of nothing: reaching the device is the point, not restarting.
            const body = JSON.stringify({
              requestId: `m-${role}-${verb}`,
              namespace: "default",
              deployment: "none",
            });
            const outcome = await nc.request(subject, body, { timeout: 10_000 }).then(
              () => "answered",
              (e: unknown) => denied(e) ? "denied" : `failed: ${e}`,
            );
            const allowed = ALLOWED[role]!.includes(verb);
            assert.equal(outcome, allowed ? "answered" : "denied", `${role} ${verb}`);
            row.push(allowed ? "yes" : "denied");
          }
          table.push(`${role.padEnd(10)} ${row.join(" ")}`);
        }
        // Bytes that are no request: refused, naming the rule; the agent carries on.
        const garbage = await identities.admin.request(
          `device-commands.cmd-pi-1.ping.${names.admin}`,
          "not json",
          { timeout: 10_000 },
        );
        const refusal = JSON.parse(garbage.string());
        assert.equal(refusal.ok, false);
        assert.equal(refusal.outcome, "refused");
        assert.match(refusal.error, /^Invalid ping request: /);
        testLogger().info(`roles × verbs (${VERBS.join(" ")}):\n${table.join("\n")}`);
        // In someone else's name, and another device's subjects: refused too.
        await assert.rejects(
          identities.viewer.request(`device-commands.cmd-pi-1.ping.${names.maintainer}`, "{}", {
            timeout: 10_000,
          }),
          (e: unknown) => denied(e),
        );
        const sub = identities.device.subscribe("device-commands.cmd-pi-1.>");
        await assert.rejects(
          (async () => {
            for await (const _ of sub) break;
          })(),
          (e: unknown) => denied(e),
        );

        // The audit trail: every command that reached the device, with who and how it ended.
        const audit = await eventually("the audit records", async () => {
          const r = await fleet([
            "audit",
            "--device",
            "cmd-pi-1",
            "--since",
            "10m",
            "-o",
            "json",
            ...flags.viewer,
          ]);
          assert.equal(r.code, 0, r.stderr);
          const records = JSON.parse(r.stdout) as {
            principal: string;
            verb: string;
            outcome: string;
            reason?: string;
            requestId?: string;
            arguments: Record<string, string>;
          }[];
          return records.length >= 21 ? records : undefined;
        }, STEP_MS);
        const mia = names.maintainer;
        const has = (verb: string, who: string, outcome: string, requestId?: string) =>
          audit.some((r) =>
            r.verb === verb && r.principal === who && r.outcome === outcome &&
            (requestId === undefined || r.requestId === requestId)
          );
        assert.ok(has("ping", names.viewer, "ok"), "viewer's ping");
        assert.ok(has("diag", mia, "ok"), "maintainer's diag");
        assert.ok(has("restart", mia, "ok", "r-1"), "maintainer's restart");
        assert.equal(
          audit.filter((r) => r.requestId === "r-1").length,
          2,
          "the retry recorded too",
        );
        const refused = audit.find((r) => r.requestId === "r-2");
        assert.equal(refused?.outcome, "refused");
        assert.match(refused?.reason ?? "", /no container of deployment "wbe"/);
        assert.deepEqual(refused?.arguments, {
          namespace: "default",
          deployment: "wbe",
          service: "web",
        });
        assert.ok(has("reconcile", mia, "ok"), "maintainer's reconcile");
        assert.ok(has("exec", names.admin, "refused"), "admin's exec, not a whole exec request");
        assert.ok(!audit.some((r) => r.principal === names.viewer && r.verb === "restart"));
        const text = await fleet(["audit", "--device", "cmd-pi-1", ...flags.viewer]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(
          text.stdout,
          new RegExp(
            `cmd-pi-1\\s+${mia}\\s+restart\\s+namespace=default,deployment=web\\s+\\d+ms\\s+ok`,
          ),
        );
        testLogger().info(`fleet audit --device cmd-pi-1:\n${text.stdout}`);

        // Offline: the agent stopped, a ping says since when, at once; a device never seen too.
        await agent[Symbol.asyncDispose]();
        agent = undefined;
        const started = performance.now();
        const offline = await fleet(["device", "ping", "cmd-pi-1", ...flags.viewer]);
        const tookMs = performance.now() - started;
        assert.equal(offline.code, 1);
        assert.match(offline.stderr, /device cmd-pi-1 is offline \(last heartbeat \d+s ago\)/);
        assert.ok(tookMs < 15_000, `answered in ${tookMs} ms, with the process start`);
        const never = await fleet(["device", "ping", "cmd-pi-9", ...flags.viewer]);
        assert.equal(never.code, 1);
        assert.match(never.stderr, /device cmd-pi-9 is offline \(it never sent a heartbeat\)/);
        testLogger().info(
          `What the CLI said:\n${
            [restarted.stdout, again.stdout, typo.stderr, reconcile.stdout, viewerRestart.stderr]
              .join("")
          }${busyReconcileText}${offline.stderr}${never.stderr}`,
        );
      } finally {
        await agent?.[Symbol.asyncDispose]();
      }
    } finally {
      for (const nc of raw) if (!nc.isClosed()) await nc.close();
      for (const c of await podman.listContainers({ [ContainerLabels.deviceId]: "cmd-pi-1" })) {
        await podman.removeContainer(c.id);
      }
    }
  },
);
