/** What every command shares: exit codes, usage errors, logging flags, the CLI's NATS client. */
import { Option } from "@commander-js/extra-typings";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  DeploymentFlagError,
  InvalidIdentifierError,
  SelectorSyntaxError,
  WireFormatError,
} from "../core/mod.ts";
import { createLogger, LogFormats, type Logger, LogLevels } from "../adapters/logger.ts";
import {
  connectNats,
  type CredentialSource,
  noCredentials,
  userPasswordCredentials,
} from "../adapters/nats/mod.ts";
import { createTokenSource, loadPrivateKey, oidcCredentials } from "../adapters/oidc/mod.ts";
import { ConfigError } from "../agent/config.ts";

export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

/** The user asked for something that cannot be done as asked (exit code 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Errors that are the user's input, not a runtime failure. */
export function isUsageError(error: unknown): boolean {
  return error instanceof UsageError || error instanceof InvalidIdentifierError ||
    error instanceof SelectorSyntaxError || error instanceof DeploymentFlagError ||
    error instanceof WireFormatError || error instanceof ConfigError;
}

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

export function loggerFrom(flags: LogFlags): Logger {
  return createLogger({ level: flags.logLevel, format: flags.logFormat });
}

export const natsUrlOption = () =>
  new Option("--nats-url <urls>", "NATS server URLs, comma-separated")
    .default("nats://127.0.0.1:4222").env("FLEET_NATS_URL");
export const natsUserOption = () =>
  new Option(
    "--nats-user <user>",
    "NATS user (development credentials)",
  )
    .env("FLEET_NATS_USER");
export const natsPasswordOption = () =>
  new Option("--nats-password <password>", "NATS password")
    .env("FLEET_NATS_PASSWORD");

export interface NatsFlags {
  natsUrl: string;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
}

/** The server URLs of --nats-url; an empty list or a URL with a space is a usage error. */
export function natsServers(flags: NatsFlags): string[] {
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

/** The OIDC identity flags (the operator's, or an admin's); see agent config `type = "oidc"`. */
export const oidcOptions = () =>
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
    new Option("--oidc-grant <grant>", "how tokens are minted").choices(
      ["jwt-bearer", "client-credentials"] as const,
    )
      .default("jwt-bearer" as const).env("FLEET_OIDC_GRANT"),
    new Option(
      "--oidc-audience <audience>",
      "resource the tokens are for (the auth callout's audience)",
    )
      .env("FLEET_OIDC_AUDIENCE"),
  ] as const;

export interface OidcFlags {
  oidcIssuer?: string | undefined;
  oidcClientId?: string | undefined;
  oidcKey?: string | undefined;
  oidcGrant?: "jwt-bearer" | "client-credentials" | undefined;
  oidcAudience?: string | undefined;
}

export async function credentialsFrom(
  flags: NatsFlags & OidcFlags,
  log: Logger,
): Promise<CredentialSource> {
  if (flags.oidcIssuer !== undefined) {
    if (flags.oidcKey === undefined) {
      throw new UsageError("--oidc-issuer needs --oidc-key (or FLEET_OIDC_KEY)");
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
      }),
      { logger: log },
    );
  }
  if (flags.natsUser === undefined) return noCredentials();
  if (flags.natsPassword === undefined) {
    throw new UsageError("--nats-user needs --nats-password (or FLEET_NATS_PASSWORD)");
  }
  log.warn("Using a NATS user and password: fine for development; production uses OIDC identities");
  return userPasswordCredentials(flags.natsUser, flags.natsPassword);
}

/** A short-lived connection for CLI commands: fails fast when NATS cannot be reached. */
export async function connectCli(flags: NatsFlags, log: Logger): Promise<NatsConnection> {
  return await connectNats({
    servers: natsServers(flags),
    credentials: await credentialsFrom(flags, log),
    name: "fleet-cli",
    logger: log,
    waitOnFirstConnect: false,
  });
}

/** An AbortSignal that fires on Ctrl-C or SIGTERM, for long-running commands. */
export function shutdownSignal(log: Logger): AbortSignal {
  const controller = new AbortController();
  const stop = (name: string) => () => {
    if (controller.signal.aborted) return;
    log.info(`Received ${name}; shutting down`);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", stop("SIGTERM"));
  return controller.signal;
}
