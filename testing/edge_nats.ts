/**
 * NATS as a device on an HTTPS-only network reaches it: nats-server (JetStream, a WebSocket
 * listener in clear) with the auth callout trusting a test OpenID provider, the callout on
 * plain TCP next to it as in the cluster, and HAProxy terminating TLS in front, as the
 * OpenShift router does for an edge Route. For the wss:// story and its bench.
 */
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, userPasswordCredentials } from "../adapters/nats/mod.ts";
import { createTokenVerifier } from "../adapters/oidc/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import {
  authorizerPolicy,
  calloutConfigFile,
  calloutServerConfig,
  type CalloutService,
  loadCalloutKeys,
  serverSettings,
  startCalloutService,
} from "../callout/mod.ts";
import { type NatsServer, startNatsServer } from "../sandbox/nats_server.ts";
import type { MachineUser, TestProvider } from "./oidc_provider.ts";
import { type EdgeProxy, startEdgeProxy } from "./haproxy.ts";
import { makeTestCertificates, type TestCertificates } from "./tls.ts";
import { writeCalloutFiles } from "./callout.ts";

/**
 * A callout config in `dir` (with its issuer seed and password) that trusts `idp`'s tokens for
 * its audience and reads Zitadel's nested roles claim, each Fleet role under its own name.
 */
export function writeCalloutConfig(dir: string, idp: TestProvider): Promise<string> {
  return writeCalloutFiles(dir, {
    oidc: {
      issuer: idp.issuer,
      audience: idp.audience,
      device_id_claim: idp.deviceIdClaim,
      role_claim: "urn:zitadel:iam:org:project:roles",
      roles: {
        device: "device",
        operator: "operator",
        viewer: "viewer",
        maintainer: "maintainer",
        admin: "admin",
      },
    },
  });
}

/** The running parts; `await using` stops them in reverse order. */
export interface EdgeNats extends AsyncDisposable {
  /** nats-server: `url` is its TCP listener, `wsUrl` the clear WebSocket one behind the proxy. */
  readonly ns: NatsServer;
  /** HAProxy: `url` is the `wss://` URL devices use. */
  readonly proxy: EdgeProxy;
  /** The route's CA (`caFile`) and the proxy's certificate. */
  readonly certs: TestCertificates;
  readonly callout: CalloutService;
}

/** Starts nats-server with the callout for `idp`, the callout, and HAProxy; files go in `dir`. */
export async function startEdgeNats(
  dir: string,
  idp: TestProvider,
  logger: Logger,
): Promise<EdgeNats> {
  const calloutPath = await writeCalloutConfig(dir, idp);
  const config = await calloutConfigFile.load(calloutPath);
  const keys = await loadCalloutKeys(config, calloutPath);
  const ns = await startNatsServer({
    websocket: true,
    extraConfig: calloutServerConfig(serverSettings(config, keys)),
  });
  const stack = new AsyncDisposableStack();
  stack.use(ns);
  try {
    // Reconnects forever, as the callout's own process does, across a nats-server restart.
    const nc: NatsConnection = await connectNats({
      servers: [ns.url],
      credentials: userPasswordCredentials(config.nats.user, keys.password),
      name: "fleet-callout",
      logger,
    });
    stack.defer(() => nc.close());
    const callout = await startCalloutService({
      nc,
      verifier: createTokenVerifier({ issuer: idp.issuer, audience: idp.audience, logger }),
      policy: authorizerPolicy(config),
      account: config.account.name,
      issuer: keys.issuer,
      logger,
    });
    stack.defer(() => callout.stop());
    const certs = await makeTestCertificates(dir, "route", ["IP:127.0.0.1"]);
    const proxy = stack.use(
      await startEdgeProxy({
        backend: new URL(ns.wsUrl ?? "").host,
        certFile: certs.certFile,
        keyFile: certs.keyFile,
      }),
    );
    const parts = stack.move();
    return { ns, proxy, certs, callout, [Symbol.asyncDispose]: () => parts.disposeAsync() };
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}

/** A machine user's private key in `dir`, as Zitadel hands it out; its path. */
export async function writeKeyFile(dir: string, user: MachineUser): Promise<string> {
  const path = join(dir, `${user.clientId}.json`);
  await Deno.writeTextFile(path, JSON.stringify(user.privateKeyJwk), { mode: 0o600 });
  return path;
}

/** What {@link writeAgentConfig} writes. */
export interface EdgeAgentConfig {
  deviceId: string;
  /** `nats.urls`, e.g. `["wss://127.0.0.1:8443"]`. */
  urls: string[];
  /** `nats.ca_file`; none: the system's CA store. */
  caFile?: string;
  idp: TestProvider;
  /** The device's machine user: its key file is written beside the config. */
  user: MachineUser;
  podmanSocket: string;
  /** `intervals.stop_timeout_seconds`; none: the agent's default. */
  stopTimeoutSeconds?: number;
  /** The `[remote]` table; none: the agent's defaults. */
  remote?: { exec?: boolean; hostShell?: boolean };
}

/**
 * An agent config with OIDC credentials, as `fleet device enroll` writes it, quick intervals:
 * `dir`/`name`.toml, its state in `dir`/`name`, the device's key file beside it. Returns the
 * config's path.
 */
export async function writeAgentConfig(
  dir: string,
  c: EdgeAgentConfig,
  name = c.deviceId,
): Promise<string> {
  const keyFile = await writeKeyFile(dir, c.user);
  const path = join(dir, `${name}.toml`);
  await Deno.writeTextFile(
    path,
    `device_id = "${c.deviceId}"
state_dir = "${join(dir, name)}"
labels = { site = "edge" }

[nats]
urls = ${JSON.stringify(c.urls)}
${
      c.caFile !== undefined
        ? `ca_file = "${c.caFile}"\n`
        : ""
    }credentials = { type = "oidc", issuer = "${c.idp.issuer}", client_id = "${c.user.clientId}", key_file = "${keyFile}", audience = "${c.idp.audience}" }

[podman]
socket = "${c.podmanSocket}"

[intervals]
heartbeat_seconds = 2
relist_seconds = 3
min_ready_seconds = 0
${c.stopTimeoutSeconds !== undefined ? `stop_timeout_seconds = ${c.stopTimeoutSeconds}\n` : ""}${
      c.remote === undefined ? "" : `
[remote]
${c.remote.exec === undefined ? "" : `exec = ${c.remote.exec}\n`}${
        c.remote.hostShell === undefined ? "" : `host_shell = ${c.remote.hostShell}\n`
      }`
    }`,
  );
  return path;
}
