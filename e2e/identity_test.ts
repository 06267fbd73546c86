/**
 * Per-device identity on real parts: an OpenID Provider (oidc-provider), nats-server with
 * auth callout, the callout service, the operator and agents with their own OIDC identity.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Buckets, deviceConsumer, deviceInboxPrefix, keys } from "../core/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import {
  connectNats,
  followDeviceConsumer,
  installConnectionResetGuard,
  readBucket,
  userPasswordCredentials,
} from "../adapters/nats/mod.ts";
import {
  createTokenSource,
  createTokenVerifier,
  oidcCredentials,
  type OidcCredentialSource,
  principalInbox,
  type TokenSource,
} from "../adapters/oidc/mod.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../testing/oidc_provider.ts";
import {
  authorizerPolicy,
  calloutConfigFile,
  calloutServerConfig,
  type CalloutService,
  loadCalloutKeys,
  serverSettings,
  startCalloutService,
} from "../callout/mod.ts";
import { LocalFleet } from "../sandbox/local_fleet.ts";
import { waitFor } from "../adapters/timers.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { containerIds, waitForStatus, webDeployment, writeCalloutConfig } from "./_helpers.ts";
import { stopOnDeadline, story, testLogger } from "./_story.ts";

const LAB = { matchLabels: { site: "lab" } };

function tokenSource(idp: TestProvider, user: MachineUser): TokenSource {
  return createTokenSource({
    issuer: idp.issuer,
    clientId: user.clientId,
    privateKeyJwk: user.privateKeyJwk,
    grant: "jwt-bearer",
    audience: idp.audience,
    logger: testLogger(),
  });
}

story(
  "identity: devices reach only their own subjects; the core loop runs with auth on",
  async () => {
    installConnectionResetGuard(testLogger());
    await using idp = await startTestProvider({ accessTokenTtlSeconds: 600 });
    const dir = await Deno.makeTempDir({ prefix: "fleet-identity-" });
    const users = {
      a: await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" }),
      b: await idp.addMachineUser({ id: "dev-b", roles: ["device"], deviceId: "dev-b" }),
      operator: await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] }),
      admin: await idp.addMachineUser({ id: "alice", roles: ["admin"] }),
      nobody: await idp.addMachineUser({ id: "no-role", roles: [] }),
      wild: await idp.addMachineUser({ id: "wild", roles: ["device"], deviceId: "dev.*" }),
    };
    const configPath = await writeCalloutConfig(dir, idp);
    const config = await calloutConfigFile.load(configPath);
    const calloutKeys = await loadCalloutKeys(config, configPath);
    const log = testLogger();
    const issued: OidcCredentialSource[] = [];
    const identity = (user: MachineUser, deviceId?: string) => {
      const credentials = oidcCredentials(tokenSource(idp, user), {
        logger: log,
        inboxPrefix: deviceId ? deviceInboxPrefix(deviceId) : principalInbox,
      });
      issued.push(credentials);
      return credentials;
    };
    const deviceUsers: Record<string, MachineUser> = { "dev-a": users.a, "dev-b": users.b };
    await using fleet = stopOnDeadline(
      await LocalFleet.start({
        log,
        version: "0.0.0-test",
        natsConfig: calloutServerConfig(serverSettings(config, calloutKeys)),
        identities: {
          client: identity(users.admin),
          operator: identity(users.operator),
          device: (id) => identity(deviceUsers[id]!, id),
        },
      }),
    );
    await ensureTestImage(fleet.podman, "v1");
    await ensureTestImage(fleet.podman, "v2");

    let callout: CalloutService | undefined;
    let calloutNc: NatsConnection | undefined;
    const startCallout = async () => {
      calloutNc = await connect({
        servers: fleet.nats.url,
        user: "fleet-callout",
        pass: calloutKeys.password,
      });
      callout = await startCalloutService({
        nc: calloutNc,
        verifier: createTokenVerifier({ issuer: idp.issuer, audience: idp.audience, logger: log }),
        policy: authorizerPolicy(config),
        account: config.account.name,
        issuer: calloutKeys.issuer,
        logger: log,
      });
    };
    const stopCallout = async () => {
      await callout?.stop();
      await calloutNc?.close();
    };
    await startCallout();
    const raw = async (user: MachineUser, deviceId?: string) => {
      const token = await idp.mintToken(user);
      return await connect({
        servers: fleet.nats.url,
        token,
        reconnect: false,
        inboxPrefix: deviceId ? deviceInboxPrefix(deviceId) : principalInbox(token),
      });
    };
    try {
      // The core loop, with every process on its own identity.
      await fleet.startOperator();
      await fleet.startAgent({ deviceId: "dev-a", labels: { site: "lab" } });
      await fleet.startAgent({ deviceId: "dev-b", labels: { site: "lab" } });
      const store = await fleet.store();
      await store.apply(webDeployment({ name: "web", selector: LAB }));
      await waitForStatus(fleet, { name: "web" }, { matched: 2, succeeded: 2 });

      // Device A: its own keys work, read from the consumer the operator prepared for it.
      const a = await raw(users.a, "dev-a");
      const own: string[] = [];
      const reading = new AbortController();
      for await (
        const e of followDeviceConsumer({
          nc: a,
          consumer: deviceConsumer("dev-a"),
          logger: log,
          signal: reading.signal,
        })
      ) {
        if (e.type === "put") own.push(e.key);
        if (e.type === "ready") reading.abort();
      }
      assert.deepEqual(own, ["dev-a.default.web"]);
      const aKv = (bucket: string) => new Kvm(a).open(bucket, { bindOnly: true });
      await (await aKv(Buckets.deviceHeartbeat)).put(
        keys.heartbeat("dev-a"),
        JSON.stringify({ deviceId: "dev-a", at: Date.now() }),
      );

      // ...and nothing of device B's, by any route through the JetStream API.
      const denied = async (what: string, attempt: () => Promise<unknown>) => {
        await assert.rejects(attempt, (e: unknown) => {
          assert.match(
            String(e instanceof Error ? `${e.message} ${e.cause ?? ""}` : e),
            /permission|denied|timeout|no responders/i,
            what,
          );
          return true;
        }, what);
      };
      const jsm = await jetstreamManager(a, { checkAPI: false });
      await denied("consumer on B's keys", () =>
        jsm.consumers.add("KV_desired-state", {
          filter_subject: "$KV.desired-state.dev-b.>",
          name: "peek",
        }));
      await denied(
        "direct get of B's key",
        async () => await (await aKv(Buckets.desiredState)).get("dev-b.default.web"),
      );
      await denied("stream info", () => jsm.streams.info("KV_desired-state"));
      await denied("stream purge", () => jsm.streams.purge("KV_desired-state"));
      await denied(
        "put to B's heartbeat",
        async () =>
          await (await aKv(Buckets.deviceHeartbeat)).put(keys.heartbeat("dev-b"), "{}", {
            timeout: 2000,
          }),
      );
      await denied(
        "put to B's state",
        async () =>
          await (await aKv(Buckets.deviceState)).put("state.dev-b.default.web", "{}", {
            timeout: 2000,
          }),
      );
      // Every bucket: B's keys cannot be written; desired state cannot be written at all.
      const writes: [string, string][] = [
        [Buckets.deviceInfo, keys.deviceInfo("dev-b")],
        [Buckets.desiredState, "dev-b.default.web"],
        [Buckets.desiredState, "dev-a.default.web"],
        [Buckets.deployments, "default.web"],
        [Buckets.deploymentStatus, "default.web"],
      ];
      for (const [bucket, key] of writes) {
        await denied(
          `put ${bucket} ${key}`,
          async () => await (await aKv(bucket)).put(key, "{}", { timeout: 2000 }),
        );
      }
      for (
        const [bucket, filter] of [
          [Buckets.deviceInfo, "info.dev-b"],
          [Buckets.deviceState, "state.dev-b.>"],
          [Buckets.deviceHeartbeat, "heartbeat.dev-b"],
          [Buckets.deployments, ">"],
        ] as const
      ) {
        await denied(
          `consumer on ${bucket} ${filter}`,
          () =>
            jsm.consumers.add(`KV_${bucket}`, {
              filter_subject: `$KV.${bucket}.${filter}`,
              name: "peek",
            }),
        );
      }
      await denied(
        "request to B's command subject",
        () => a.request("device-commands.dev-b.restart", "", { timeout: 1000 }),
      );
      for (const subject of ["_INBOX.>", "device-commands.dev-b.>", "$KV.desired-state.dev-b.>"]) {
        const sub = a.subscribe(subject);
        await denied(`subscribe ${subject}`, async () => {
          for await (const _ of sub) {
            break;
          }
        });
      }
      await a.close();

      // The operator and an admin read every device.
      for (const user of [users.operator, users.admin]) {
        const nc = await raw(user);
        const kv = await new Kvm(nc).open(Buckets.desiredState);
        assert.equal((await kv.get("dev-b.default.web"))?.operation, "PUT");
        await nc.close();
      }

      // Refused: no role, a device id with metacharacters, another issuer, an expired token.
      for (const user of [users.nobody, users.wild]) {
        await assert.rejects(() => raw(user), /authoriz/i);
      }
      await using foreign = await startTestProvider();
      const stranger = await foreign.addMachineUser({
        id: "dev-a",
        roles: ["device"],
        deviceId: "dev-a",
      });
      await assert.rejects(
        async () =>
          await connect({
            servers: fleet.nats.url,
            token: await foreign.mintToken(stranger),
            reconnect: false,
          }),
        /authoriz/i,
      );
      await using shortLived = await startTestProvider({ accessTokenTtlSeconds: 1 });
      const brief = await shortLived.addMachineUser({
        id: "dev-a",
        roles: ["device"],
        deviceId: "dev-a",
      });
      const expired = await shortLived.mintToken(brief);
      await new Promise((r) => setTimeout(r, 2500));
      await assert.rejects(
        async () => await connect({ servers: fleet.nats.url, token: expired, reconnect: false }),
        /authoriz/i,
      );

      // nats-server restarted while the provider is down: everyone reconnects on the tokens
      // they hold, and the fleet keeps reconciling.
      const before = await containerIds(fleet);
      await idp.stop();
      await fleet.nats.restart();
      await waitFor(
        "the apply to go through",
        () => store.apply(webDeployment({ name: "web", selector: LAB, tag: "v2" })),
        30_000,
      );
      await waitForStatus(
        fleet,
        { name: "web" },
        { generation: 2, matched: 2, succeeded: 2 },
        60_000,
      );
      assert.notDeepEqual(await containerIds(fleet), before);
      await idp.start();

      // Delete: the agents remove the containers and their own state keys.
      await store.delete({ namespace: "default", name: "web" });
      await waitFor(
        "containers gone",
        async () => (await fleet.containers()).length === 0 || undefined,
      );
      await waitFor(
        "the devices' state keys gone",
        async () =>
          (await readBucket(await fleet.connection(), Buckets.deviceState, log)).size === 0 ||
          undefined,
      );

      // The callout restarted: new connections get in again.
      await stopCallout();
      await assert.rejects(() => raw(users.a, "dev-a"));
      await startCallout();
      const again = await raw(users.a, "dev-a");
      await again.close();
    } finally {
      await stopCallout();
      for (const credentials of issued) credentials.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

story(
  "identity: a device offline for longer than its token's life reconnects with a fresh token",
  async () => {
    installConnectionResetGuard(testLogger());
    const log = testLogger();
    await using idp = await startTestProvider({ accessTokenTtlSeconds: 4 });
    const dir = await Deno.makeTempDir({ prefix: "fleet-identity-" });
    const configPath = await writeCalloutConfig(dir, idp);
    const config = await calloutConfigFile.load(configPath);
    const calloutKeys = await loadCalloutKeys(config, configPath);
    await using nats = stopOnDeadline(
      await startNatsServer({
        extraConfig: calloutServerConfig(serverSettings(config, calloutKeys)),
      }),
    );
    const calloutNc = await connectNats({
      servers: [nats.url],
      credentials: userPasswordCredentials("fleet-callout", calloutKeys.password),
      name: "callout",
      logger: log,
    });
    const callout = await startCalloutService({
      nc: calloutNc,
      verifier: createTokenVerifier({ issuer: idp.issuer, audience: idp.audience, logger: log }),
      policy: authorizerPolicy(config),
      account: config.account.name,
      issuer: calloutKeys.issuer,
      logger: log,
    });
    const operator = await idp.addMachineUser({ id: "fleet-operator", roles: ["operator"] });
    const device = await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" });
    const credentials = oidcCredentials(tokenSource(idp, device), {
      logger: log,
      inboxPrefix: deviceInboxPrefix("dev-a"),
    });
    const operatorToken = await idp.mintToken(operator);
    const admin = await connect({
      servers: nats.url,
      token: operatorToken,
      reconnect: false,
      inboxPrefix: principalInbox(operatorToken),
    });
    // `fleet operator run` on its own OIDC identity, from the flags (key from a file).
    const keyFile = join(dir, "operator.key.json");
    await Deno.writeTextFile(keyFile, JSON.stringify(operator.privateKeyJwk), { mode: 0o600 });
    const operatorProcess = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("../main.ts", import.meta.url)),
        "operator",
        "run",
        "--nats-url",
        nats.url,
        "--oidc-issuer",
        idp.issuer,
        "--oidc-client-id",
        operator.clientId,
        "--oidc-key",
        keyFile,
        "--oidc-audience",
        idp.audience,
        "--log-level",
        "warn",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor("the operator process to create the buckets", async () => {
        await (await jetstreamManager(admin)).streams.info(`KV_${Buckets.deviceHeartbeat}`);
        return true;
      }, 30_000);
      operatorProcess.kill("SIGTERM");
      assert.equal((await operatorProcess.status).code, 0, "the operator ran on its OIDC identity");
      await admin.close();
      const nc = await connectNats({
        servers: [nats.url],
        credentials,
        name: "dev-a",
        logger: log,
      });
      const beats = await new Kvm(nc).open(Buckets.deviceHeartbeat, { bindOnly: true });
      await beats.put(
        keys.heartbeat("dev-a"),
        JSON.stringify({ deviceId: "dev-a", at: Date.now() }),
      );
      await nats.kill();
      await new Promise((r) => setTimeout(r, 6000)); // longer than the 4 s token
      await nats.restart();
      await waitFor("a heartbeat after the outage", async () => {
        await beats.put(
          keys.heartbeat("dev-a"),
          JSON.stringify({ deviceId: "dev-a", at: Date.now() }),
          { timeout: 1000 },
        );
        return true;
      }, 30_000);
      assert.ok(
        callout.stats.allowed >= 3,
        `the callout admitted the device again (${callout.stats.allowed} allowed)`,
      );
      await nc.close();
    } finally {
      try {
        operatorProcess.kill("SIGKILL");
      } catch {
        // Already stopped.
      }
      credentials.stop();
      await callout.stop();
      await calloutNc.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
