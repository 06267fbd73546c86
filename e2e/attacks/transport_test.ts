/**
 * Attacks on tokens and transport (issue 12, item 2), on real parts: nats-server (with TLS
 * and the auth callout), the test OpenID Provider, the callout with the real token verifier,
 * and an eavesdropper listening on this machine's network address.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AuthorizationError, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  connectNats,
  installConnectionResetGuard,
  NatsConnectError,
  type NatsTls,
  userPasswordCredentials,
} from "../../adapters/nats/mod.ts";
import {
  createTokenSource,
  createTokenVerifier,
  oidcCredentials,
  type OidcCredentialSource,
} from "../../adapters/oidc/mod.ts";
import {
  authorizerPolicy,
  calloutConfigFile,
  calloutServerConfig,
  type CalloutService,
  loadCalloutKeys,
  serverSettings,
  startCalloutService,
} from "../../callout/mod.ts";
import { ConfigFileError } from "../../adapters/toml_config.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../../testing/oidc_provider.ts";
import { PROJECT, signInWithDeviceFlow, startProjectProvider } from "../../testing/oidc.ts";
import { captureLogger } from "../../testing/nats.ts";
import {
  issueTestCertificate,
  makeTestCertificates,
  nonLoopbackAddress,
  type TestCertificates,
} from "../../testing/tls.ts";
import { tempDir } from "../../testing/temp_dir.ts";
import { type CalloutFields, calloutToml, writeCalloutFiles } from "../../testing/callout.ts";
import { Command } from "@commander-js/extra-typings";
import { enrollOptions, planEnroll } from "../../commands/_enroll.ts";
import { errorMessage, UsageError } from "../../core/errors.ts";
import { story, testLogger } from "../_story.ts";

/** The device's identity: OIDC tokens minted with its own key, as the agent does. */
function deviceCredentials(idp: TestProvider, user: MachineUser): OidcCredentialSource {
  return oidcCredentials(
    createTokenSource({
      issuer: idp.issuer,
      clientId: user.clientId,
      privateKeyJwk: user.privateKeyJwk,
      grant: "jwt-bearer",
      audience: idp.audience,
      logger: testLogger(),
    }),
    { logger: testLogger() },
  );
}

interface CalloutSetup {
  /** The provider whose tokens the callout accepts. */
  idp: TestProvider;
  /** Server TLS (certificate and key). */
  tls?: TestCertificates;
  /** The server encrypts authorization requests (`auth_callout.xkey`). @default true */
  serverXkey?: boolean;
  /** `[oidc] access_token_clients`. */
  accessTokenClients?: string[];
  /**
   * An issuer given to the verifier directly, as in a callout whose config check was
   * bypassed (the config names a placeholder https issuer).
   */
  verifierIssuer?: string;
}

/** The callout's config for a provider at `issuer`, as an operator writes it. */
function calloutFields(issuer: string, setup: Omit<CalloutSetup, "idp">): CalloutFields {
  return {
    xkey: true,
    oidc: {
      issuer,
      audience: PROJECT,
      device_id_claim: "fleet_device_id",
      access_token_clients: setup.accessTokenClients ?? [],
      roles: { device: "device", admin: "admin" },
    },
    ...(setup.tls
      ? { server: { tls: { cert_file: setup.tls.certFile, key_file: setup.tls.keyFile } } }
      : {}),
  };
}

/** nats-server with the generated block, and the callout with the real verifier. */
async function startCallout(dir: string, setup: CalloutSetup) {
  // A config whose issuer check was bypassed names a placeholder https issuer.
  const issuer = setup.verifierIssuer === undefined ? setup.idp.issuer : "https://idp.invalid";
  const path = await writeCalloutFiles(dir, calloutFields(issuer, setup));
  const config = await calloutConfigFile.load(path);
  const keys = await loadCalloutKeys(config, path);
  const settings = serverSettings(config, keys);
  if (setup.serverXkey === false) delete settings.xkey;
  const ns = await startNatsServer({ extraConfig: calloutServerConfig(settings) });
  installConnectionResetGuard(testLogger());
  const calloutNc = await connectNats({
    servers: [`127.0.0.1:${ns.port}`],
    ...(setup.tls ? { tls: { caFile: setup.tls.caFile } } : {}),
    credentials: userPasswordCredentials(config.nats.user, keys.password),
    name: "fleet-callout",
    logger: testLogger(),
  });
  const { logger, lines } = captureLogger("info");
  const service: CalloutService = await startCalloutService({
    nc: calloutNc,
    verifier: createTokenVerifier({
      issuer: setup.verifierIssuer ?? config.oidc.issuer,
      audience: config.oidc.audience,
      accessTokenClients: config.oidc.access_token_clients,
      logger,
    }),
    policy: authorizerPolicy(config),
    account: config.account.name,
    issuer: keys.issuer,
    ...(keys.xkey ? { xkey: keys.xkey } : {}),
    logger,
  });
  return {
    ns,
    service,
    lines,
    async [Symbol.asyncDispose]() {
      await service.stop();
      await calloutNc.close();
      await ns[Symbol.asyncDispose]();
    },
  };
}

/** Connects with `token` as the NATS token; the error when refused. */
async function connectWithToken(
  url: string,
  token: string,
  tls?: NatsTls,
): Promise<NatsConnection | Error> {
  try {
    return await connect({
      servers: url,
      token,
      reconnect: false,
      ...(tls?.caFile ? { tls: { caFile: tls.caFile } } : {}),
    });
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * A fake NATS server on `host`: it greets with an INFO line, as nats-server does, and keeps
 * every byte a client sends it — what an eavesdropper on the path would read.
 */
function eavesdropper(host: string) {
  const listener = Deno.listen({ hostname: host, port: 0 });
  const heard: string[] = [];
  let accepted = 0;
  const info = `INFO {"server_id":"EAVESDROPPER","version":"2.10.27","proto":1,` +
    `"host":"${host}","port":4222,"headers":true,"max_payload":1048576}\r\n`;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      (async () => {
        await conn.write(new TextEncoder().encode(info));
        const buf = new Uint8Array(65536);
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          heard.push(new TextDecoder().decode(buf.subarray(0, n)));
        }
        conn.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    url: `nats://${host}:${(listener.addr as Deno.NetAddr).port}`,
    heard,
    get accepted() {
      return accepted;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

story(
  "transport attack: an eavesdropper on plaintext NATS beyond loopback never gets a token",
  async () => {
    await using idp = await startTestProvider({ audience: PROJECT });
    const device = await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" });
    const host = nonLoopbackAddress();
    await using spy = eavesdropper(host);
    const credentials = deviceCredentials(idp, device);
    try {
      await assert.rejects(
        connectNats({
          servers: [spy.url],
          credentials,
          name: "fleet-agent-dev-a",
          logger: testLogger(),
          waitOnFirstConnect: false,
        }),
        (err: unknown) => {
          assert.ok(err instanceof NatsConnectError, String(err));
          assert.match(
            err.message,
            new RegExp(`Refusing to send an OIDC access token to NATS at ${spy.url} without TLS`),
          );
          assert.match(err.message, /Use tls:\/\/ \(or wss:\/\/\) URLs and pass the CA/);
          return true;
        },
      );
    } finally {
      credentials.stop();
    }
    assert.equal(spy.accepted, 0, "the client did not even open a connection");
    assert.deepEqual(spy.heard, []);
  },
);

story(
  "transport attack: an impostor server with another CA's or another key's certificate gets no token",
  async () => {
    await using dir = await tempDir("fleet-attack-tls-");
    await using idp = await startTestProvider({ audience: PROJECT });
    const device = await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" });
    const real = await makeTestCertificates(dir.path, "fleet", ["IP:127.0.0.1"]);
    const strangerCa = await makeTestCertificates(dir.path, "stranger", ["IP:127.0.0.1"]);
    // A certificate of the right CA on another key: a server the pin does not name.
    const sameCaOtherKey = await issueTestCertificate(dir.path, "other", real, ["IP:127.0.0.1"]);

    const attempt = async (serverCert: TestCertificates, tls: NatsTls) => {
      await using sub = await tempDir("fleet-attack-tls-server-");
      await using callout = await startCallout(sub.path, { idp, tls: serverCert });
      const credentials = deviceCredentials(idp, device);
      try {
        const result = await connectNats({
          servers: [`tls://127.0.0.1:${callout.ns.port}`],
          tls,
          credentials,
          name: "fleet-agent-dev-a",
          logger: testLogger(),
          waitOnFirstConnect: false,
        }).then(async (nc) => {
          await nc.close();
          return "connected";
        }, (err: unknown) => errorMessage(err));
        return { result, requests: { ...callout.service.stats } };
      } finally {
        credentials.stop();
      }
    };

    const impostorCa = await attempt(strangerCa, { caFile: real.caFile });
    assert.match(impostorCa.result, /Cannot connect to NATS at .*certificate/i);
    assert.deepEqual(
      impostorCa.requests,
      { allowed: 0, refused: 0, dropped: 0 },
      "no token reached it",
    );

    const impostorKey = await attempt(sameCaOtherKey, { caFile: real.caFile, pin: real.pin });
    assert.match(impostorKey.result, /does not match the pin/);
    assert.deepEqual(impostorKey.requests, { allowed: 0, refused: 0, dropped: 0 });

    // Nothing lost: the real server, with the pinned key, lets the device in.
    const genuine = await attempt(real, { caFile: real.caFile, pin: real.pin });
    assert.equal(genuine.result, "connected");
    assert.equal(genuine.requests.allowed, 1);
  },
);

story(
  "transport attack: a person's ID token is not a NATS credential; their access token is",
  async () => {
    await using dir = await tempDir("fleet-attack-idtoken-");
    // Zitadel's shape: the ID token has the callout's audience and the person's roles.
    await using idp = await startProjectProvider();
    await using callout = await startCallout(dir.path, { idp });
    const { accessToken, idToken } = await signInWithDeviceFlow(idp, "alice");
    assert.ok(idToken !== undefined);

    const stolen = await connectWithToken(callout.ns.url, idToken);
    assert.ok(stolen instanceof AuthorizationError, `the ID token got in: ${stolen}`);
    assert.ok(
      callout.lines.some((l) =>
        l.includes("Refused a NATS connection: the token was rejected: not an access token")
      ),
      callout.lines.join("\n"),
    );
    const own = await connectWithToken(callout.ns.url, accessToken);
    assert.ok(!(own instanceof Error), `the access token was refused: ${own}`);
    await own.close();
    assert.deepEqual({ ...callout.service.stats }, { allowed: 1, refused: 1, dropped: 0 });
  },
);

story(
  "transport attack: Zitadel's typ JWT access tokens pass only for listed clients, ID tokens never",
  async () => {
    await using dir = await tempDir("fleet-attack-zitadel-");
    await using idp = await startProjectProvider("JWT");
    await using callout = await startCallout(dir.path, { idp, accessTokenClients: [PROJECT] });
    const { accessToken, idToken } = await signInWithDeviceFlow(idp, "alice");
    assert.ok(idToken !== undefined);
    const stolen = await connectWithToken(callout.ns.url, idToken);
    assert.ok(stolen instanceof AuthorizationError, `the ID token got in: ${stolen}`);
    const own = await connectWithToken(callout.ns.url, accessToken);
    assert.ok(!(own instanceof Error), `the access token was refused: ${own}`);
    await own.close();
  },
);

story("transport attack: tokens of an http issuer beyond loopback are refused", async () => {
  await using dir = await tempDir("fleet-attack-http-issuer-");
  // The provider's keys travel in clear: whoever is on the path could serve their own.
  await using idp = await startTestProvider({
    audience: PROJECT,
    host: nonLoopbackAddress(),
  });
  const device = await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" });
  assert.throws(
    () =>
      calloutConfigFile.parse(calloutToml(dir.path, calloutFields(idp.issuer, {})), "callout.toml"),
    (err: unknown) => {
      assert.ok(err instanceof ConfigFileError);
      assert.match(err.message, /oidc\.issuer: the issuer "http:\/\/[\d.]+:\d+" is not https/);
      return true;
    },
  );
  // A callout whose config check was bypassed still refuses the token.
  await using callout = await startCallout(dir.path, { idp, verifierIssuer: idp.issuer });
  const refused = await connectWithToken(callout.ns.url, await idp.mintToken(device));
  assert.ok(refused instanceof AuthorizationError, `the token got in: ${refused}`);
  assert.ok(
    callout.lines.some((l) => l.includes("is not https: its signing keys would be fetched")),
    callout.lines.join("\n"),
  );
  assert.deepEqual({ ...callout.service.stats }, { allowed: 0, refused: 1, dropped: 0 });
});

story(
  "transport attack: with an xkey configured, an unencrypted authorization request is refused",
  async () => {
    await using dir = await tempDir("fleet-attack-xkey-");
    await using idp = await startTestProvider({ audience: PROJECT });
    const device = await idp.addMachineUser({ id: "dev-a", roles: ["device"], deviceId: "dev-a" });
    // The server's auth_callout block lost its xkey (or a forger publishes requests in clear).
    await using callout = await startCallout(dir.path, { idp, serverXkey: false });
    const token = await idp.mintToken(device);
    const refused = await connectWithToken(callout.ns.url, token);
    assert.ok(refused instanceof AuthorizationError, `the device got in: ${refused}`);
    assert.ok(
      callout.lines.some((l) => l.includes("the authorization request was not encrypted")),
      callout.lines.join("\n"),
    );
    assert.deepEqual({ ...callout.service.stats }, { allowed: 0, refused: 1, dropped: 0 });
  },
);

/** `fleet <args>` as a person runs it, without FLEET_* variables from this environment. */
async function fleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", fileURLToPath(new URL("../../main.ts", import.meta.url)), ...args],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

story(
  "transport attack: an admin's CLI sends its token only over TLS with --nats-ca, never in clear",
  async () => {
    await using dir = await tempDir("fleet-attack-cli-");
    await using idp = await startTestProvider({ audience: PROJECT });
    const admin = await idp.addMachineUser({ id: "alice", roles: ["admin"] });
    const keyFile = join(dir.path, "alice.json");
    await Deno.writeTextFile(keyFile, JSON.stringify(admin.privateKeyJwk), { mode: 0o600 });
    const identity = [
      ...["--oidc-issuer", idp.issuer, "--oidc-client-id", admin.clientId],
      ...["--oidc-key", keyFile, "--oidc-audience", PROJECT],
    ];
    await using spy = eavesdropper(nonLoopbackAddress());
    const clear = await fleet(["get", "devices", "--nats-url", spy.url, ...identity]);
    assert.equal(clear.code, 2, clear.stderr);
    assert.match(clear.stderr, /Refusing to send an OIDC access token to NATS at nats:\/\//);
    assert.equal(spy.accepted, 0);

    const certs = await makeTestCertificates(dir.path, "fleet", ["IP:127.0.0.1"]);
    await using sub = await tempDir("fleet-attack-cli-server-");
    await using callout = await startCallout(sub.path, { idp, tls: certs });
    const url = `tls://127.0.0.1:${callout.ns.port}`;
    const tls = await fleet([
      "get",
      "devices",
      "--nats-url",
      url,
      "--nats-ca",
      certs.caFile,
      ...identity,
    ]);
    assert.equal(tls.code, 0, tls.stderr);
    assert.equal(callout.service.stats.allowed, 1);
  },
);

story(
  "transport attack: enrolling an OIDC device onto plaintext NATS is refused; with the CA the device gets it",
  async () => {
    await using dir = await tempDir("fleet-attack-enroll-");
    await Deno.writeFile(join(dir.path, "fleet_9.9.9_amd64.deb"), new Uint8Array(16));
    const certs = await makeTestCertificates(dir.path, "fleet", ["DNS:nats.example.com"]);
    /** The plan `fleet device enroll pi-7 <args>` makes, through the command's own options. */
    const plan = async (...args: string[]) => {
      const command = new Command("enroll").exitOverride();
      for (const option of enrollOptions()) command.addOption(option);
      command.parse([
        ...["--package-dir", dir.path, "--device-oidc-issuer", "https://id.example.com"],
        ...["--device-nats-url", "nats://nats.example.com:4222", "--no-wait", ...args],
      ], { from: "user" });
      return await planEnroll("pi-7", command.opts());
    };
    await assert.rejects(plan(), (err: unknown) => {
      assert.ok(err instanceof UsageError, String(err));
      assert.match(
        err.message,
        /^The device's NATS: Refusing to send an OIDC access token to NATS at nats:\/\/nats\.example\.com:4222 without TLS/,
      );
      return true;
    });
    // The admin's own --nats-ca and --nats-pin are the device's unless told otherwise.
    const admins = await plan("--nats-ca", certs.caFile, "--nats-pin", certs.pin);
    assert.equal(admins.deviceNatsCa, await Deno.readTextFile(certs.caFile));
    assert.equal(admins.deviceNatsPin, certs.pin);
    const own = await plan("--device-nats-url", "tls://nats.example.com:4222");
    assert.equal(own.deviceNatsCa, undefined, "a tls:// URL with the system's CAs needs none");
    await assert.rejects(
      plan("--device-nats-ca", join(dir.path, "missing.pem")),
      /--device-nats-ca .*missing\.pem does not exist/,
    );
  },
);
