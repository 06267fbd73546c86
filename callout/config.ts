/**
 * The auth callout's TOML configuration (`callout.toml`), validated with zod; errors name
 * the file and the field.
 *
 * ```toml
 * [nats]
 * urls = ["tls://nats.example.com:4222"]  # nats:// (loopback), tls://, ws://, wss://
 * ca_file = "/etc/fleet-callout/nats-ca.pem"  # CA of the server's certificate (makes it TLS)
 * # pin = "sha256//..."                   # optional: the server's public key, see --nats-pin
 * user = "fleet-callout"                  # the callout's own user, in the AUTH account
 * password_file = "/etc/fleet-callout/nats-password"   # or password = "..."
 *
 * [account]
 * name = "FLEET"                          # where device and operator users are placed
 * issuer_seed_file = "/etc/fleet-callout/issuer.nk"    # account signing seed, SA...
 * xkey_seed_file = "/etc/fleet-callout/xkey.nk"        # optional curve seed, SX...
 *
 * [account.jetstream]                     # optional: the account's JetStream limits in
 * max_memory = "256M"                     # what `fleet callout nats-config` emits (defaults
 * max_file = "8G"                         # in core/limits.ts); bytes, or a number with
 * max_streams = 32                        # K, M, G or T
 * max_consumers = 150000                  # per stream: one per device on desired-state
 *
 * [oidc]
 * issuer = "https://idp.example.com/realms/fleet"   # https (http only on loopback, for tests)
 * audience = "fleet-nats"
 * # Only access tokens are accepted: JWT header typ "at+jwt" (RFC 9068). Zitadel signs its
 * # access tokens with typ "JWT": list the client ids (client_id or azp claim) whose tokens
 * # are access tokens: the devices' and the operator's machine users, the CLI's client.
 * access_token_clients = ["fleet-operator", "fleet-cli"]
 * device_id_claim = "sub"
 * role_claim = "roles"                    # or "urn:zitadel:iam:org:project:roles"
 * strip_prefix = "device-"                # machine user "device-pi-1" is device "pi-1"
 * roles = { fleet-device = "device", fleet-operator = "operator", fleet-viewer = "viewer",
 *           fleet-maintainer = "maintainer", fleet-admin = "admin" }
 *
 * [jwt]
 * max_ttl_seconds = 3600
 *
 * [server.tls]                            # optional: for `fleet callout nats-config`
 * cert_file = "/etc/nats/server.pem"      # nats-server's certificate and key
 * key_file = "/etc/nats/server.key"
 * ca_file = "/etc/nats/ca.pem"            # optional: CA of client certificates
 * [server.websocket]                      # optional: wss:// listener, needs [server.tls]
 * listen = "0.0.0.0:8443"
 * ```
 */

import * as z from "zod";
import { readFailure, TomlConfigFile } from "../adapters/toml_config.ts";
import { FleetRoles } from "../core/permissions.ts";
import {
  natsTlsFromConfig,
  PIN_COMMAND,
  PIN_PATTERN,
  secretTransportProblem,
} from "../adapters/nats/mod.ts";
import { issuerProblem } from "../adapters/oidc/mod.ts";
import type { KeyPair } from "@nats-io/nkeys";
import type { AuthorizerPolicy } from "./authorizer.ts";
import { AccountSigningKey, CalloutKeyError, curveKeyFromSeed } from "./keys.ts";

const NatsUrl = z.string().regex(
  /^(nats|tls|ws|wss):\/\/[^\s/]+$|^[^\s:/]+:\d+$/,
  "must look like nats://host:4222 (or tls://, ws://, wss://, or host:port)",
);

/** A NATS subject token or account name: no dots, wildcards or whitespace. */
const NatsName = z.string().regex(
  /^[A-Za-z0-9_-]+$/,
  "use letters, digits, '-' and '_' only",
);

const AbsolutePath = z.string().startsWith("/", "must be an absolute path");

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** A size in bytes: a whole number, or text such as "512M" or "8GiB" (powers of 1024). */
const BYTE_SIZE_RULE = 'must be a number of bytes, or one with K, M, G or T such as "8G"';
const ByteSize = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+\s*[KMGT]?(i?B)?$/i).transform((text) => {
    const [, digits, unit] = /^(\d+)\s*([KMGT]?)/i.exec(text)!;
    return Number(digits) * UNITS[unit!.toUpperCase()]!;
  }),
], { error: BYTE_SIZE_RULE });

/** The callout's configuration as written in the file. */
export const CalloutConfig = z.object({
  nats: z.object({
    urls: z.array(NatsUrl).min(1, "list at least one NATS server"),
    user: NatsName,
    password: z.string().min(1).optional(),
    password_file: AbsolutePath.optional(),
    ca_file: AbsolutePath.optional(),
    pin: z.string().regex(PIN_PATTERN, `must be sha256//<base64>, printed by: ${PIN_COMMAND}`)
      .optional(),
  }).refine((n) => (n.password === undefined) !== (n.password_file === undefined), {
    message: "set exactly one of password and password_file",
  }).superRefine((nats, ctx) => {
    // Whoever holds it may answer authorization requests: it must not cross a network in clear.
    const problem = secretTransportProblem(
      nats.urls,
      natsTlsFromConfig(nats),
      "the callout's password",
    );
    if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["urls"], message: problem });
  }),
  account: z.object({
    name: NatsName.default("FLEET"),
    issuer_seed_file: AbsolutePath,
    xkey_seed_file: AbsolutePath.optional(),
    jetstream: z.object({
      max_memory: ByteSize.optional(),
      max_file: ByteSize.optional(),
      max_streams: z.number().int().positive().optional(),
      max_consumers: z.number().int().positive().optional(),
    }).optional(),
  }),
  oidc: z.object({
    issuer: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).superRefine(
      (issuer, ctx) => {
        const problem = issuerProblem(issuer);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
      },
    ),
    audience: z.string().min(1),
    access_token_clients: z.array(z.string().min(1)).default([]),
    device_id_claim: z.string().min(1).default("sub"),
    role_claim: z.string().min(1).default("roles"),
    strip_prefix: z.string().default(""),
    roles: z.record(z.string().min(1), z.enum(FleetRoles)).refine(
      (roles) => Object.keys(roles).length > 0,
      {
        message: `map at least one OIDC role to a Fleet role (${FleetRoles.join(", ")})`,
      },
    ),
  }),
  jwt: z.object({
    max_ttl_seconds: z.number().int().positive().default(3600),
  }).default({ max_ttl_seconds: 3600 }),
  /** What `fleet callout nats-config` adds to the server's configuration. */
  server: z.object({
    tls: z.object({
      cert_file: AbsolutePath,
      key_file: AbsolutePath,
      ca_file: AbsolutePath.optional(),
    }).optional(),
    websocket: z.object({
      listen: z.string().regex(/^[^\s:]*:\d+$/, "must be host:port, e.g. 0.0.0.0:8443"),
    }).optional(),
  }).refine((s) => s.websocket === undefined || s.tls !== undefined, {
    message: "websocket needs [server.tls]: tokens must not cross the network in clear",
  }).optional(),
});
/** The validated configuration. */
export type CalloutConfig = z.infer<typeof CalloutConfig>;

/** The callout's config file; the files it names are read by {@link loadCalloutKeys}. */
export const calloutConfigFile = new TomlConfigFile("callout config", CalloutConfig);

/** The decision rules of the authorizer, from the `[oidc]` and `[jwt]` sections. */
export function authorizerPolicy(config: CalloutConfig): AuthorizerPolicy {
  return {
    deviceIdClaim: config.oidc.device_id_claim,
    roleClaim: config.oidc.role_claim,
    stripPrefix: config.oidc.strip_prefix,
    roles: config.oidc.roles,
    maxTtlSeconds: config.jwt.max_ttl_seconds,
  };
}

/** The secrets a config file names, read from their files and checked. */
export interface CalloutKeys {
  /** The callout user's NATS password. */
  password: string;
  /** The account signing key that issues user JWTs (its public key is the `issuer`). */
  issuer: AccountSigningKey;
  /** The curve key that encrypts the exchange with the server, when configured. */
  xkey?: KeyPair;
}

/**
 * Reads the password and seed files the config names and loads the keys.
 *
 * @throws {ConfigFileError} naming the field and the file that cannot be read or does
 *   not hold the right kind of seed.
 */
export async function loadCalloutKeys(config: CalloutConfig, path: string): Promise<CalloutKeys> {
  let password = config.nats.password;
  if (password === undefined) {
    const file = config.nats.password_file ?? "";
    password = (await readConfigFile(path, file, "nats.password_file")).trim();
    if (password === "") {
      throw calloutConfigFile.error(path, `nats.password_file: ${file} is empty`);
    }
  }
  const issuer = await loadSeed(
    path,
    config.account.issuer_seed_file,
    "account.issuer_seed_file",
    AccountSigningKey.fromSeed,
  );
  const xkeyFile = config.account.xkey_seed_file;
  const xkey = xkeyFile === undefined
    ? undefined
    : await loadSeed(path, xkeyFile, "account.xkey_seed_file", curveKeyFromSeed);
  return { password, issuer, ...(xkey ? { xkey } : {}) };
}

async function loadSeed<K>(
  configPath: string,
  file: string,
  field: string,
  load: (seed: string) => K,
): Promise<K> {
  const seed = await readConfigFile(configPath, file, field);
  try {
    return load(seed);
  } catch (cause) {
    if (!(cause instanceof CalloutKeyError)) throw cause;
    throw calloutConfigFile.error(configPath, `${field}: ${file} is ${cause.message}`, {
      cause,
    });
  }
}

/** Reads a file the config names in `field`; errors name the config, the field and the file. */
async function readConfigFile(configPath: string, file: string, field: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (cause) {
    throw calloutConfigFile.error(configPath, `${field}: ${file} ${readFailure(cause)}`, { cause });
  }
}
