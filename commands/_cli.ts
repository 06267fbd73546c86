/**
 * What every command shares: exit codes and usage errors, logging flags, and the NATS
 * connection flags with the one function that turns them into the CLI's NATS client.
 */
import { type Command, Option, type OptionValues } from "@commander-js/extra-typings";
import type { NatsConnection } from "@nats-io/nats-core";
import * as z from "zod";
import { createLogger, LogFormats, type Logger, LogLevels } from "../adapters/logger.ts";
import {
  connectNats,
  type CredentialSource,
  type NatsTls,
  noCredentials,
  PIN_COMMAND,
  PIN_PATTERN,
  userPasswordCredentials,
} from "../adapters/nats/mod.ts";
import {
  createTokenSource,
  loadPrivateKey,
  oidcCredentials,
  principalInbox,
} from "../adapters/oidc/mod.ts";
import { UsageError } from "../core/errors.ts";
import { readSecret } from "./_secret.ts";
import { recordLogFlags } from "./_report.ts";

export { ExitCode, UsageError } from "../core/errors.ts";

// Factories, not shared instances: commander options are mutable (`.default()` on one
// command must not change another's).
export const logLevelOption = () =>
  new Option("--log-level <level>", "how much to log")
    .choices(LogLevels).default("info" as const).env("FLEET_LOG_LEVEL");
export const logFormatOption = () =>
  new Option(
    "--log-format <format>",
    "text for people, json for machines",
  )
    .choices(LogFormats).default("text" as const).env("FLEET_LOG_FORMAT");

export interface LogFlags {
  logLevel: typeof LogLevels[number];
  logFormat: typeof LogFormats[number];
}

/** The command's logger; its flags also decide how a failure is reported (see _report.ts). */
export function loggerFrom(flags: LogFlags): Logger {
  recordLogFlags(flags);
  return createLogger({ level: flags.logLevel, format: flags.logFormat });
}

/**
 * The argument parser of an integer option: `.argParser(integerParser("--cpus", 1))`.
 *
 * @param name the option, for the message
 * @param min the smallest value allowed
 * @param max the largest value allowed
 * @throws {UsageError} for text that is not an integer from `min` to `max`.
 */
export function integerParser(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range = max < Number.MAX_SAFE_INTEGER ? `from ${min} to ${max}` : `of at least ${min}`;
      throw new UsageError(`${name} must be an integer ${range}, got "${text}"`);
    }
    return n;
  };
}

/**
 * `-n`: the namespace a command works in. One variable for all of them, as kubectl's context
 * namespace: FLEET_NAMESPACE=team-a makes apply, get and delete work in team-a.
 */
export const namespaceOption = (description: string) =>
  new Option("-n, --namespace <namespace>", description).env("FLEET_NAMESPACE");

/** `--ignore-not-found` of the commands that remove something: the same meaning everywhere. */
export const ignoreNotFoundOption = (description: string) =>
  new Option("--ignore-not-found", description).env("FLEET_IGNORE_NOT_FOUND");

const natsUrlOption = () =>
  new Option("--nats-url <urls>", "NATS server URLs, comma-separated")
    .default("nats://127.0.0.1:4222").env("FLEET_NATS_URL");
const natsUserOption = () =>
  new Option(
    "--nats-user <user>",
    "NATS user (development credentials)",
  )
    .env("FLEET_NATS_USER");
const natsPasswordOption = () =>
  new Option("--nats-password <password>", "NATS password (visible in ps: prefer the file)")
    .env("FLEET_NATS_PASSWORD");
const natsPasswordFileOption = () =>
  new Option("--nats-password-file <path>", "file holding the NATS password, - for standard input")
    .env("FLEET_NATS_PASSWORD_FILE");
const natsCaOption = () =>
  new Option(
    "--nats-ca <file>",
    "PEM file of the CA that signed the NATS server's certificate (makes the connection TLS)",
  )
    .env("FLEET_NATS_CA");
const natsPinOption = () =>
  new Option(
    "--nats-pin <sha256>",
    "NATS server public-key pin, sha256//<base64> (makes the connection TLS); print it with: " +
      PIN_COMMAND,
  )
    .env("FLEET_NATS_PIN");

/**
 * The TLS settings of --nats-ca and --nats-pin.
 *
 * @throws {UsageError} for a pin that is not `sha256//<base64>`.
 */
export function natsTls(
  flags: { natsCa?: string | undefined; natsPin?: string | undefined },
): NatsTls {
  if (flags.natsPin !== undefined && !PIN_PATTERN.test(flags.natsPin)) {
    throw new UsageError(
      `Invalid --nats-pin ${JSON.stringify(flags.natsPin)}: give sha256// and the base64 ` +
        `SHA-256 of the server's public key, printed by: ${PIN_COMMAND}`,
    );
  }
  return {
    ...(flags.natsCa !== undefined ? { caFile: flags.natsCa } : {}),
    ...(flags.natsPin !== undefined ? { pin: flags.natsPin } : {}),
  };
}

/** The server URLs of --nats-url; an empty list or a URL with a space is a usage error. */
export function natsServers(flags: { natsUrl: string }): string[] {
  const servers = flags.natsUrl.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (servers.length === 0 || servers.some((s) => /\s/.test(s))) {
    throw new UsageError(
      `Invalid --nats-url ${
        JSON.stringify(flags.natsUrl)
      }: give one or more comma-separated URLs such as nats://127.0.0.1:4222, without spaces`,
    );
  }
  return servers;
}

const OidcGrants = ["jwt-bearer", "client-credentials"] as const;
const OidcProviders = ["generic", "zitadel"] as const;

/** The OIDC identity flags (the operator's, or an admin's); see agent config `type = "oidc"`. */
const oidcOptions = () =>
  [
    new Option("--oidc-issuer <url>", "OIDC issuer: authenticate to NATS with tokens from it")
      .env("FLEET_OIDC_ISSUER"),
    new Option("--oidc-client-id <id>", "OIDC machine user (default: from a Zitadel key file)")
      .env("FLEET_OIDC_CLIENT_ID"),
    new Option(
      "--oidc-key <path-or-json>",
      "private key: a file, or the key itself (from a Secret)",
    )
      .env("FLEET_OIDC_KEY"),
    new Option("--oidc-grant <grant>", "how tokens are minted").choices(OidcGrants)
      .default("jwt-bearer" as const).env("FLEET_OIDC_GRANT"),
    new Option(
      "--oidc-audience <audience>",
      "resource the tokens are for (the auth callout's audience)",
    )
      .env("FLEET_OIDC_AUDIENCE"),
    new Option(
      "--oidc-provider <provider>",
      "zitadel: ask for the project's roles and the project as audience (needs --oidc-project-id)",
    ).choices(OidcProviders).default("generic" as const).env("FLEET_OIDC_PROVIDER"),
    new Option("--oidc-project-id <id>", "the Fleet project's id in Zitadel")
      .env("FLEET_OIDC_PROJECT_ID"),
  ] as const;

/**
 * Every flag that says how to reach NATS and as whom: the servers and their TLS (CA, pin), then
 * an OIDC identity (how
 * admins and the operator authenticate) or a user and password (development only). Every
 * command that talks to NATS takes all of them, through {@link withNatsConnection} (or this
 * list, for a command that reads its flags with {@link NatsConnectionFlags}).
 */
export function natsConnectionOptions() {
  return [
    natsUrlOption(),
    natsCaOption(),
    natsPinOption(),
    natsUserOption(),
    natsPasswordOption(),
    natsPasswordFileOption(),
    ...oidcOptions(),
  ] as const;
}

const optional = z.string().optional();

/** The values of {@link natsConnectionOptions} as commander hands them over. */
export const NatsConnectionFlags = z.object({
  natsUrl: z.string(),
  natsCa: optional,
  natsPin: optional,
  natsUser: optional,
  natsPassword: optional,
  natsPasswordFile: optional,
  oidcIssuer: optional,
  oidcClientId: optional,
  oidcKey: optional,
  oidcGrant: z.enum(OidcGrants).optional(),
  oidcAudience: optional,
  oidcProvider: z.enum(OidcProviders).optional(),
  oidcProjectId: optional,
});
export type NatsConnectionFlags = z.infer<typeof NatsConnectionFlags>;

/**
 * Adds the NATS connection flags ({@link natsConnectionOptions}) to `command`, typed, so its
 * action can hand its flags to {@link connectFromFlags}.
 */
export function withNatsConnection<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(command: Command<Args, Opts, GlobalOpts>): Command<Args, Opts & NatsConnectionFlags, GlobalOpts> {
  for (const option of natsConnectionOptions()) command.addOption(option);
  // The values are what NatsConnectionFlags describes (options_test.ts parses them with it).
  // Declared rather than inferred through eight addOption() calls: that inference made `deno
  // check` of some roots run for many minutes.
  return command as Command<Args, Opts & NatsConnectionFlags, GlobalOpts>;
}

/** The flags {@link withNatsClient} adds (a type alias: commander's option values need one). */
export type NatsClientFlags = NatsConnectionFlags & {
  logLevel: LogFlags["logLevel"];
  logFormat: LogFlags["logFormat"];
};

/**
 * {@link withNatsConnection}, then logging quiet unless asked: what a one-shot command that
 * talks to NATS takes after its own options.
 */
export function withNatsClient<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(
  command: Command<Args, Opts, GlobalOpts>,
): Command<Args, Opts & NatsClientFlags, GlobalOpts> {
  withNatsConnection(command)
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption());
  // Declared, not inferred (see withNatsConnection).
  return command as Command<Args, Opts & NatsClientFlags, GlobalOpts>;
}

/**
 * Who the command is to NATS: an OIDC identity when --oidc-issuer is given, else the user and
 * password, else nobody.
 *
 * @throws {UsageError} for an incomplete set (--oidc-issuer without --oidc-key, ...).
 */
async function credentialsFrom(
  flags: NatsConnectionFlags,
  log: Logger,
): Promise<CredentialSource> {
  if (flags.oidcIssuer !== undefined) {
    if (flags.oidcKey === undefined) {
      throw new UsageError("--oidc-issuer needs --oidc-key (or FLEET_OIDC_KEY)");
    }
    if (flags.oidcProvider === "zitadel" && flags.oidcProjectId === undefined) {
      throw new UsageError(
        "--oidc-provider zitadel needs --oidc-project-id (or FLEET_OIDC_PROJECT_ID): the id of " +
          "the Fleet project in Zitadel, whose roles the tokens must carry",
      );
    }
    const key = await loadPrivateKey(flags.oidcKey);
    const clientId = flags.oidcClientId ?? key.clientId;
    if (clientId === undefined) {
      throw new UsageError(
        "--oidc-client-id is required unless the key is a Zitadel key file that names its user",
      );
    }
    return oidcCredentials(
      createTokenSource({
        issuer: flags.oidcIssuer,
        clientId,
        privateKeyJwk: key,
        grant: flags.oidcGrant ?? "jwt-bearer",
        logger: log,
        ...(flags.oidcAudience ? { audience: flags.oidcAudience } : {}),
        ...(flags.oidcProvider === "zitadel" && flags.oidcProjectId
          ? { zitadelProjectId: flags.oidcProjectId }
          : {}),
      }),
      // The operator's and people's users may only subscribe to their principal's inbox.
      { logger: log, inboxPrefix: principalInbox },
    );
  }
  if (flags.natsUser === undefined) return noCredentials();
  const password = flags.natsPasswordFile !== undefined
    ? await readSecret("--nats-password-file", flags.natsPasswordFile)
    : flags.natsPassword;
  if (password === undefined) {
    throw new UsageError(
      "--nats-user needs --nats-password-file (or FLEET_NATS_PASSWORD, or --nats-password)",
    );
  }
  log.warn("Using a NATS user and password: fine for development; production uses OIDC identities");
  return userPasswordCredentials(flags.natsUser, password);
}

/** How {@link connectFromFlags} connects, where a command differs from the CLI's default. */
export interface ConnectFromFlagsOptions {
  /** The client name NATS shows. @default "fleet-cli" */
  name?: string;
  /**
   * Keep trying while NATS is down (a long-running command), instead of failing at once (a
   * one-shot command, whose user wants to know). @default false
   */
  waitOnFirstConnect?: boolean;
  /** Stops the attempts. */
  signal?: AbortSignal;
}

/**
 * The NATS connection the flags of {@link withNatsConnection} describe: the one way a command
 * turns them into a connection. By default a one-shot command's, failing fast when NATS cannot
 * be reached.
 *
 * @throws {UsageError} for flags that do not make a connection (see {@link credentialsFrom}).
 */
export async function connectFromFlags(
  flags: NatsConnectionFlags,
  log: Logger,
  options: ConnectFromFlagsOptions = {},
): Promise<NatsConnection> {
  return await connectNats({
    servers: natsServers(flags),
    tls: natsTls(flags),
    credentials: await credentialsFrom(flags, log),
    name: options.name ?? "fleet-cli",
    logger: log,
    waitOnFirstConnect: options.waitOnFirstConnect ?? false,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/**
 * An AbortSignal that fires on Ctrl-C (SIGINT), SIGTERM or a hang-up (SIGHUP: the terminal
 * was closed), for long-running commands: each of them is a request to stop cleanly.
 */
export function shutdownSignal(log: Logger): AbortSignal {
  const controller = new AbortController();
  for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(name, () => {
      if (controller.signal.aborted) return;
      log.info(`Received ${name}; shutting down`);
      controller.abort();
    });
  }
  return controller.signal;
}
