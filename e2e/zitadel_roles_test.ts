/**
 * The callout in front of a provider that behaves like Zitadel: a machine user's token carries
 * roles only when asked for with the project-roles scope and the project as audience.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { createTokenSource, createTokenVerifier } from "../adapters/oidc/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { agentConfigFile } from "../agent/config.ts";
import { credentialsFromConfig } from "../agent/credentials.ts";
import { deviceInboxPrefix } from "../core/permissions.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startTestProvider } from "../testing/oidc_provider.ts";
import { captureLogger } from "../testing/nats.ts";
import { eventually } from "../testing/eventually.ts";
import { writeCalloutConfig } from "./_helpers.ts";
import {
  authorizerPolicy,
  calloutConfigFile,
  calloutServerConfig,
  loadCalloutKeys,
  serverSettings,
  startCalloutService,
} from "../callout/mod.ts";

const PROJECT = "302118472931950612";

Deno.test("callout with Zitadel: a token without the roles scope is refused and says so; an agent with provider = zitadel connects", async () => {
  installConnectionResetGuard(silentLogger);
  await using idp = await startTestProvider({ zitadelProjectId: PROJECT });
  const device = await idp.addMachineUser({ id: "pi-7", roles: ["device"], deviceId: "pi-7" });
  const dir = await Deno.makeTempDir({ prefix: "fleet-zitadel-" });
  const calloutPath = await writeCalloutConfig(dir, idp);
  const config = await calloutConfigFile.load(calloutPath);
  const keys = await loadCalloutKeys(config, calloutPath);
  await using ns = await startNatsServer({
    extraConfig: calloutServerConfig(serverSettings(config, keys)),
  });
  const { logger, lines } = captureLogger("info");
  const calloutNc = await connect({ servers: ns.url, user: "fleet-callout", pass: keys.password });
  const callout = await startCalloutService({
    nc: calloutNc,
    verifier: createTokenVerifier({ issuer: idp.issuer, audience: PROJECT, logger }),
    policy: authorizerPolicy(config),
    account: config.account.name,
    issuer: keys.issuer,
    logger,
  });
  try {
    // Before: the project as audience but no roles scope, as Fleet asked until now.
    const bare = await createTokenSource({
      issuer: idp.issuer,
      clientId: device.clientId,
      privateKeyJwk: device.privateKeyJwk,
      grant: "jwt-bearer",
      scope: `openid urn:zitadel:iam:org:project:id:${PROJECT}:aud`,
      logger: silentLogger,
    }).token();
    await assert.rejects(
      connect({
        servers: ns.url,
        token: bare,
        reconnect: false,
        inboxPrefix: deviceInboxPrefix("pi-7"),
      }),
      /authorization/i,
    );
    const refused = await eventually(
      "the callout logs why it refused the token",
      () => lines.find((line) => line.includes("Refused a NATS connection")),
    );
    assert.match(
      refused,
      /has no "urn:zitadel:iam:org:project:roles" claim, so it carries no roles/,
    );
    assert.match(refused, /must request the scope "urn:zitadel:iam:org:projects:roles"/);

    // The agent's own credential path, configured for Zitadel as enroll writes it.
    const keyFile = join(dir, "device-key.json");
    await Deno.writeTextFile(keyFile, JSON.stringify(device.privateKeyJwk), { mode: 0o600 });
    const agentConfig = agentConfigFile.parse(
      `device_id = "pi-7"

[nats]
urls = ["${ns.url}"]
credentials = { type = "oidc", issuer = "${idp.issuer}", client_id = "${device.clientId}", key_file = "${keyFile}", provider = "zitadel", project_id = "${PROJECT}" }

[podman]
socket = "/run/podman/podman.sock"
`,
      "config.toml",
    );
    const credentials = await credentialsFromConfig(agentConfig.nats.credentials, {
      deviceId: "pi-7",
      configPath: "config.toml",
      log: silentLogger,
    });
    const nc = await connect({
      servers: ns.url,
      reconnect: false,
      ...await credentials.connectionOptions(),
    });
    try {
      await nc.flush();
      assert.ok(
        lines.some((line) => /Allowed .* on NATS/.test(line) && line.includes("pi-7")),
        lines.join("\n"),
      );
    } finally {
      await nc.close();
      if ("stop" in credentials && typeof credentials.stop === "function") credentials.stop();
    }
  } finally {
    await callout.stop();
    await calloutNc.close();
    await Deno.remove(dir, { recursive: true });
  }
});
