/**
 * The auth callout on a real nats-server started with the generated config, running
 * in-process, with a local issuer whose tokens a test verifier checks against a local key
 * set: for the callout's tests and its bench.
 */

import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";
import { installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import type { MetricsRegistry } from "../adapters/metrics.ts";
import { deviceInboxPrefix } from "../core/permissions.ts";
import { principalInbox } from "../adapters/oidc/mod.ts";
import type * as z from "zod";
import { stringify } from "smol-toml";
import {
  authorizerPolicy,
  type CalloutConfig,
  calloutConfigFile,
  loadCalloutKeys,
} from "../callout/config.ts";
import { curveKeyFromSeed, generateSeeds } from "../callout/keys.ts";
import { calloutServerConfig, serverSettings } from "../callout/nats_config.ts";
import { startCalloutService, type TokenVerifier, type VerifiedToken } from "../callout/service.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { captureLogger } from "./nats.ts";
import { errorMessage } from "../core/errors.ts";

const ISSUER = "https://idp.test/realms/fleet";
const AUDIENCE = "fleet-nats";

/** What the OIDC adapter's TokenRejectedError looks like to the service. */
class TestTokenRejected extends Error {
  override name = "TestTokenRejected";
  constructor(readonly reason: string) {
    super(`Token rejected: ${reason}`);
  }
}

/** A local issuer: signs tokens and verifies them like the real verifier would. */
async function localIssuer() {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...await exportJWK(publicKey), kid: "k1", alg: "ES256" };
  const keySet = createLocalJWKSet({ keys: [jwk] });
  const verifier: TokenVerifier = {
    async verify(token: string): Promise<VerifiedToken> {
      try {
        const { payload } = await jwtVerify(token, keySet, { issuer: ISSUER, audience: AUDIENCE });
        return { claims: payload, expiresAt: (payload.exp ?? 0) * 1000 };
      } catch (err) {
        throw new TestTokenRejected(errorMessage(err));
      }
    },
  };
  const mint = (
    sub: string,
    roles: string[],
    options: { expiresInSeconds?: number; signer?: CryptoKey } = {},
  ) =>
    new SignJWT({ roles })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 600))
      .sign(options.signer ?? privateKey);
  return { verifier, mint };
}

/** What a test's callout.toml says beyond what {@link calloutToml} fills in. */
export interface CalloutFields {
  oidc: z.input<typeof CalloutConfig>["oidc"];
  /** Port of the local nats-server. @default 4222 */
  port?: number;
  /** Also the `xkey.nk` written by {@link writeCalloutSecrets}. */
  xkey?: boolean;
  jwt?: z.input<typeof CalloutConfig>["jwt"];
  server?: z.input<typeof CalloutConfig>["server"];
}

/** The issuer (and xkey) seed and the callout's password, in `dir`, as an operator keeps them. */
export async function writeCalloutSecrets(dir: string): Promise<void> {
  const { issuerSeed, xkeySeed } = generateSeeds();
  await Deno.writeTextFile(join(dir, "issuer.nk"), issuerSeed, { mode: 0o600 });
  await Deno.writeTextFile(join(dir, "xkey.nk"), xkeySeed, { mode: 0o600 });
  await Deno.writeTextFile(join(dir, "password"), "callout-secret\n", { mode: 0o600 });
}

/**
 * The text of a callout.toml: the local nats-server as user fleet-callout, the account FLEET
 * with the seeds of {@link writeCalloutSecrets} in `dir`, and `fields`.
 */
export function calloutToml(dir: string, fields: CalloutFields): string {
  const config: z.input<typeof CalloutConfig> = {
    nats: {
      urls: [`nats://127.0.0.1:${fields.port ?? 4222}`],
      user: "fleet-callout",
      password_file: join(dir, "password"),
    },
    account: {
      name: "FLEET",
      issuer_seed_file: join(dir, "issuer.nk"),
      ...(fields.xkey ? { xkey_seed_file: join(dir, "xkey.nk") } : {}),
    },
    oidc: fields.oidc,
    ...(fields.jwt ? { jwt: fields.jwt } : {}),
    ...(fields.server ? { server: fields.server } : {}),
  };
  return stringify(config);
}

/** Writes {@link calloutToml} to `dir`/callout.toml; returns its path. */
export async function writeCalloutToml(dir: string, fields: CalloutFields): Promise<string> {
  const path = join(dir, "callout.toml");
  await Deno.writeTextFile(path, calloutToml(dir, fields));
  return path;
}

/** {@link writeCalloutSecrets} and {@link writeCalloutToml}: a callout's files, ready to run. */
export async function writeCalloutFiles(dir: string, fields: CalloutFields): Promise<string> {
  await writeCalloutSecrets(dir);
  return await writeCalloutToml(dir, fields);
}

/** nats-server with the generated block, the callout running in-process, a local issuer. */
export async function startCalloutFixture(
  encrypted: boolean,
  serviceXkey: "configured" | "none" | "other" = "configured",
  metrics?: MetricsRegistry,
) {
  const dir = await Deno.makeTempDir({ prefix: "fleet-callout-" });
  const path = await writeCalloutFiles(dir, {
    xkey: encrypted,
    oidc: {
      issuer: ISSUER,
      audience: AUDIENCE,
      roles: {
        "fleet-device": "device",
        "fleet-operator": "operator",
        "fleet-viewer": "viewer",
        "fleet-maintainer": "maintainer",
        "fleet-admin": "admin",
      },
    },
    jwt: { max_ttl_seconds: 600 },
  });
  const config = await calloutConfigFile.load(path);
  const keys = await loadCalloutKeys(config, path);
  const ns = await startNatsServer({
    extraConfig: calloutServerConfig(serverSettings(config, keys)),
  });
  const { logger, lines } = captureLogger("info");
  installConnectionResetGuard(silentLogger);
  const issuer = await localIssuer();
  /** One `fleet callout run`: its own connection, the same keys and queue group. */
  const startCallout = async (metrics?: MetricsRegistry) => {
    const nc = await connect({ servers: ns.url, user: "fleet-callout", pass: keys.password });
    const service = await startCalloutService({
      nc,
      verifier: issuer.verifier,
      policy: authorizerPolicy(config),
      account: config.account.name,
      issuer: keys.issuer,
      ...(keys.xkey && serviceXkey === "configured" ? { xkey: keys.xkey } : {}),
      ...(serviceXkey === "other" ? { xkey: curveKeyFromSeed(generateSeeds().xkeySeed) } : {}),
      ...(metrics ? { metrics } : {}),
      logger,
    });
    return {
      service,
      async [Symbol.asyncDispose]() {
        await service.stop();
        await nc.close();
      },
    };
  };
  const first = await startCallout(metrics);
  const service = first.service;
  /**
   * Connects with `token` as the product does: a device on its inbox, anyone else on its
   * principal's. A token that names no principal (not a JWT, say) goes without one: the
   * callout refuses it anyway.
   */
  const connectAs = (token: string, deviceId?: string) => {
    let inboxPrefix: string | undefined;
    try {
      inboxPrefix = deviceId ? deviceInboxPrefix(deviceId) : principalInbox(token);
    } catch {
      inboxPrefix = undefined;
    }
    return connect({
      servers: ns.url,
      token,
      reconnect: false,
      ...(inboxPrefix !== undefined ? { inboxPrefix } : {}),
    });
  };
  return {
    ns,
    lines,
    service,
    /** Starts another callout beside the first, as the chart's second replica. */
    startCallout,
    mint: issuer.mint,
    connectAs,
    async [Symbol.asyncDispose]() {
      await first[Symbol.asyncDispose]();
      await ns[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
