import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import { connectNats, natsTlsFromConfig, userPasswordCredentials } from "../adapters/nats/mod.ts";
import { createTokenVerifier } from "../adapters/oidc/mod.ts";
import { printLine } from "../adapters/output.ts";
import {
  authorizerPolicy,
  type CalloutConfig,
  calloutConfigFile,
  type CalloutKeys,
  calloutServerConfig,
  type CalloutService,
  generateSeeds,
  loadCalloutKeys,
  publicKeyOfSeed,
  serverSettings,
  startCalloutService,
} from "../callout/mod.ts";
import { logFormatOption, loggerFrom, logLevelOption, shutdownSignal, UsageError } from "./_cli.ts";
import { healthPortOption, serveHealthIfAsked } from "./_health.ts";
import { MetricsRegistry, registerBuildInfo } from "../adapters/metrics.ts";
import { errorMessage } from "../core/errors.ts";

const configOption = () =>
  new Option("-c, --config <path>", "callout config file (TOML)")
    .default("/etc/fleet-callout/callout.toml").env("FLEET_CALLOUT_CONFIG");

/**
 * The config and its keys; a bad file is a ConfigFileError, a usage error (exit 2) naming
 * the file and the field.
 */
async function load(path: string): Promise<{ config: CalloutConfig; keys: CalloutKeys }> {
  const config = await calloutConfigFile.load(path);
  return { config, keys: await loadCalloutKeys(config, path) };
}

function runCommand(version: string): Command {
  return new Command("run")
    .description(
      "Run the NATS auth callout: turn OIDC access tokens into NATS users with per-role permissions",
    )
    .addOption(configOption())
    .addOption(healthPortOption("FLEET_CALLOUT_HEALTH_PORT"))
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example:
  fleet callout run --config /etc/fleet-callout/callout.toml --health-port 8080

With --health-port, /readyz answers 200 once connected to NATS and answering requests.

nats-server must have the matching auth_callout block: see 'fleet callout nats-config'.
Every decision is logged with its reason; clients are only told "authorization failed".`,
    )
    .action(async (flags) => {
      const { config, keys } = await load(flags.config);
      const log = loggerFrom(flags).with({ component: "callout" });
      const signal = shutdownSignal(log);
      // Served before connecting: a liveness probe must not kill a callout waiting for NATS or its OIDC provider.
      const metrics = new MetricsRegistry();
      registerBuildInfo(metrics, version);
      let service: CalloutService | undefined;
      await using _health = serveHealthIfAsked(flags.healthPort, {
        notReady: () => service ? service.notReady() : "not answering authorization requests yet",
        metrics,
        log,
        signal,
      });
      const verifier = createTokenVerifier({
        issuer: config.oidc.issuer,
        audience: config.oidc.audience,
        accessTokenClients: config.oidc.access_token_clients,
        logger: log,
      });
      // Fail loudly but keep running: the keys are fetched again on the first token.
      await verifier.refreshKeys().catch((err: unknown) => {
        log.warn(
          `Cannot read the OIDC provider's keys yet: ${
            errorMessage(err)
          }; tokens are refused until it answers`,
          { issuer: config.oidc.issuer },
        );
      });
      const nc = await connectNats({
        servers: config.nats.urls,
        tls: natsTlsFromConfig(config.nats),
        credentials: userPasswordCredentials(config.nats.user, keys.password),
        name: "fleet-callout",
        logger: log,
        signal,
        // Until the callout is back after a server restart, every client's connect fails:
        // it must be back before the devices, which wait a second or more.
        reconnectWaitMs: 100,
      });
      try {
        await using started = await startCalloutService({
          nc,
          verifier,
          policy: authorizerPolicy(config),
          account: config.account.name,
          issuer: keys.issuer,
          ...(keys.xkey ? { xkey: keys.xkey } : {}),
          logger: log,
          metrics,
        });
        service = started;
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        keys.issuer.clear();
        await nc.close();
      }
    });
}

function natsConfigCommand(): Command {
  return new Command("nats-config")
    .description("Print the nats-server configuration block that matches the callout config")
    .addOption(configOption())
    .addHelpText(
      "after",
      `
Prints the accounts (FLEET with JetStream, AUTH with the callout's user, SYS), system_account
and authorization.auth_callout (issuer, auth_users, account, xkey), and with [server.tls] the
tls block (and with [server.websocket] a wss:// listener). The output holds the callout
user's password: write it to a file only nats-server can read.

Example:
  fleet callout nats-config --config callout.toml > /etc/nats/fleet-auth.conf
  # then in nats-server.conf: include ./fleet-auth.conf`,
    )
    .action(async (flags) => {
      const { config, keys } = await load(flags.config);
      const settings = serverSettings(config, keys);
      keys.issuer.clear();
      printLine(calloutServerConfig(settings).trimEnd());
    });
}

async function writeSeed(path: string, seed: string, force: boolean): Promise<void> {
  try {
    await Deno.writeTextFile(path, seed + "\n", { mode: 0o600, createNew: !force });
    await Deno.chmod(path, 0o600); // an existing file keeps its mode on overwrite
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`${path} already exists; pass --force to replace it`);
    }
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function keysCommand(): Command {
  return new Command("keys")
    .description(
      "Generate the callout's account signing seed (issuer.nk) and xkey seed (xkey.nk), mode 0600",
    )
    .addOption(
      new Option("-d, --dir <dir>", "directory to write the seed files into (created if needed)")
        .default(".").env("FLEET_CALLOUT_KEYS_DIR"),
    )
    .addOption(
      new Option("--no-xkey", "do not generate the xkey seed (requests stay unencrypted)")
        .env("FLEET_CALLOUT_NO_XKEY"),
    )
    .addOption(
      new Option("--force", "replace existing seed files").env("FLEET_CALLOUT_KEYS_FORCE"),
    )
    .addHelpText(
      "after",
      `
Example:
  fleet callout keys --dir /etc/fleet-callout
  # callout.toml: issuer_seed_file = "/etc/fleet-callout/issuer.nk"
  #               xkey_seed_file   = "/etc/fleet-callout/xkey.nk"`,
    )
    .action(async (flags) => {
      await Deno.mkdir(flags.dir, { recursive: true });
      const { issuerSeed, xkeySeed } = generateSeeds();
      const issuerFile = join(flags.dir, "issuer.nk");
      const xkeyFile = join(flags.dir, "xkey.nk");
      // Checked before writing anything, so a refusal leaves no half-new pair behind.
      for (const file of flags.xkey ? [issuerFile, xkeyFile] : [issuerFile]) {
        if (!flags.force && await exists(file)) {
          throw new UsageError(`${file} already exists; pass --force to replace it`);
        }
      }
      await writeSeed(issuerFile, issuerSeed, flags.force === true);
      printLine(`wrote ${issuerFile} (issuer ${publicKeyOfSeed(issuerSeed)})`);
      if (flags.xkey) {
        await writeSeed(xkeyFile, xkeySeed, flags.force === true);
        printLine(`wrote ${xkeyFile} (xkey ${publicKeyOfSeed(xkeySeed)})`);
      }
    });
}

/** `fleet callout`: the NATS auth callout and its setup helpers. */
export function calloutCommand(): Command {
  const callout = new Command("callout").description(
    "The NATS auth callout: OIDC access tokens in, NATS user JWTs with per-role permissions out",
  );
  callout.addCommand(runCommand(denoJson.version));
  callout.addCommand(natsConfigCommand());
  callout.addCommand(keysCommand());
  return callout;
}
