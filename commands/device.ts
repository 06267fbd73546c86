import { Command, Option } from "@commander-js/extra-typings";
import { describeIssues, DeviceLabels, validateIdentifier } from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import { askSecret, askYesNo } from "../adapters/host/terminal.ts";
import { LocalTarget, type Target } from "../adapters/host/target.ts";
import { parseSshTarget, SshTarget } from "../adapters/host/ssh_target.ts";
import type { CredentialsConfig } from "../agent/config.ts";
import { enrollDevice } from "../enroll/enroll.ts";
import { deviceFlowLogin } from "../adapters/oidc/mod.ts";
import { createZitadelIdentityProvider, createZitadelManagement } from "../adapters/zitadel/mod.ts";
import {
  connectCli,
  logFormatOption,
  loggerFrom,
  logLevelOption,
  natsPasswordOption,
  natsServers,
  natsUrlOption,
  natsUserOption,
  oidcOptions,
  UsageError,
} from "./_cli.ts";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--heartbeat-timeout must be a whole number of seconds, got "${text}"`);
  }
  return n;
}

function parseLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new UsageError(`--label "${pair}" is not key=value`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const result = DeviceLabels.safeParse(labels);
  if (!result.success) throw new UsageError(`Invalid --label: ${describeIssues(result.error)}`);
  return result.data;
}

/** `fleet_<version>_<arch>.deb` for each architecture found in `dir`. */
async function findPackages(
  dir: string,
): Promise<Record<string, { path: string; version: string }>> {
  const found: Record<string, { path: string; version: string }> = {};
  try {
    for await (const entry of Deno.readDir(dir)) {
      const m = /^fleet_(.+)_(amd64|arm64)\.deb$/.exec(entry.name);
      if (m) found[m[2]!] = { path: `${dir}/${entry.name}`, version: m[1]! };
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (Object.keys(found).length === 0) {
    throw new UsageError(
      `No fleet_<version>_<arch>.deb in --package-dir ${dir}: build them with \`deno task package\``,
    );
  }
  return found;
}

/** The admin signs in with a code on another device (RFC 8628); returns the access token. */
async function signIn(issuer: string, clientId: string): Promise<string> {
  const token = await deviceFlowLogin({
    issuer,
    clientId,
    // The audience scope lets the token call Zitadel's own Management API.
    scope: "openid urn:zitadel:iam:org:project:id:zitadel:aud",
    prompt: (p) =>
      printLine(
        `To let enroll create the device's identity, open ${
          p.verificationUriComplete ?? p.verificationUri
        } and enter the code ${p.userCode}`,
      ),
  });
  return token.accessToken;
}

function enrollCommand(): Command {
  const command = new Command("enroll")
    .description(
      "Turn a Debian machine (this one, or one over SSH) into a fleet device: podman, the fleet-agent user and service, config, key; waits for its first heartbeat",
    )
    .requiredOption("--device-id <id>", "the device's id (a DNS label, e.g. pi-lab-7)")
    .addOption(
      new Option("--label <key=value>", "a device label (repeat for more)").argParser(collect)
        .default([] as string[], "none"),
    )
    .option("--target <ssh-url>", "ssh://user@host[:port]; default: this machine")
    .option("--ssh-key <path>", "private key for --target (default: ssh's own choice)")
    .option("--package-dir <dir>", "where fleet_<version>_<arch>.deb are", "dist")
    .option(
      "--device-nats-url <urls>",
      "NATS URLs the device connects to, comma-separated (default: --nats-url)",
    )
    .option("--device-key <path>", "the device's private key file (OIDC identity)")
    .option("--device-oidc-issuer <url>", "OIDC issuer the device gets its tokens from")
    .option("--device-oidc-audience <audience>", "audience of the device's tokens")
    .option("--device-nats-user <user>", "shared NATS user for the device (development only)")
    .option("--device-nats-password <password>", "its password (development only)")
    .option("--zitadel-url <url>", "create the device's identity in this Zitadel instance")
    .option("--zitadel-project-id <id>", "the Zitadel project whose `device` role devices get")
    .option("--zitadel-org-id <id>", "the organisation devices live in (default: the admin's)")
    .addOption(
      new Option("--zitadel-token <token>", "the admin's access token (default: sign in)")
        .env("FLEET_ZITADEL_TOKEN"),
    )
    .addOption(
      new Option("--zitadel-client-id <id>", "the CLI's public client, for signing in")
        .env("FLEET_ZITADEL_CLIENT_ID"),
    )
    .option("-y, --yes", "overwrite a different config on the device without asking")
    .option("--no-wait", "do not wait for the first heartbeat")
    .addOption(
      new Option("--heartbeat-timeout <seconds>", "how long to wait for the first heartbeat")
        .argParser(seconds).default(120),
    )
    .addOption(natsUrlOption())
    .addOption(natsUserOption())
    .addOption(natsPasswordOption())
    .addOption(logLevelOption().default("warn" as const))
    .addOption(logFormatOption());
  for (const option of oidcOptions()) command.addOption(option);
  return command
    .addHelpText(
      "after",
      `
Every step says whether it changed anything; a second run changes nothing. New labels
rewrite only the config and restart the agent. A different config already on the device
is shown as a diff and replaced only when you confirm (or pass --yes).

Examples:
  fleet device enroll --device-id pi-lab-7 --label site=lab \\
    --target ssh://pi@10.0.0.7 --nats-url nats://10.0.0.5:4222 \\
    --device-oidc-issuer https://id.example.com --device-key pi-lab-7.json
  sudo fleet device enroll --device-id gw-1 --label site=shop --nats-url nats://nats:4222`,
    )
    .action(async (flags) => {
      const log = loggerFrom(flags);
      validateIdentifier("device id", flags.deviceId);
      const labels = parseLabels(flags.label);
      const deviceUrls = natsServers({ natsUrl: flags.deviceNatsUrl ?? flags.natsUrl });
      let credentials: CredentialsConfig = { type: "none" };
      const issuer = flags.deviceOidcIssuer ?? flags.zitadelUrl;
      if (issuer !== undefined) {
        credentials = {
          type: "oidc",
          issuer,
          key_file: "/etc/fleet-agent/device-key.json",
          grant: "jwt-bearer",
          ...(flags.deviceOidcAudience ? { audience: flags.deviceOidcAudience } : {}),
        };
      } else if (flags.deviceNatsUser !== undefined) {
        if (flags.deviceNatsPassword === undefined) {
          throw new UsageError("--device-nats-user needs --device-nats-password");
        }
        credentials = {
          type: "userpass",
          user: flags.deviceNatsUser,
          password: flags.deviceNatsPassword,
        };
      }
      if (flags.deviceKey !== undefined && credentials.type !== "oidc") {
        throw new UsageError(
          "--device-key needs --device-oidc-issuer (the key is an OIDC identity)",
        );
      }
      const deviceKey = flags.deviceKey === undefined
        ? undefined
        : await Deno.readTextFile(flags.deviceKey);
      const packages = await findPackages(flags.packageDir);
      if (flags.zitadelUrl !== undefined && flags.zitadelProjectId === undefined) {
        throw new UsageError("--zitadel-url needs --zitadel-project-id");
      }
      if (
        flags.zitadelUrl !== undefined && flags.zitadelToken === undefined &&
        flags.zitadelClientId === undefined
      ) {
        throw new UsageError(
          "--zitadel-url needs --zitadel-token, or --zitadel-client-id to sign in with a code",
        );
      }
      // Validates before connecting anywhere.
      const address = flags.target === undefined ? undefined : parseSshTarget(flags.target);

      await using target: Target = address
        ? await SshTarget.connect({
          address,
          ...(flags.sshKey ? { identityFile: flags.sshKey } : {}),
          prompt: askSecret,
        })
        : new LocalTarget(askSecret);
      const identity = flags.zitadelUrl === undefined ? undefined : createZitadelIdentityProvider({
        management: createZitadelManagement({
          baseUrl: flags.zitadelUrl,
          token: flags.zitadelToken ?? await signIn(flags.zitadelUrl, flags.zitadelClientId!),
          ...(flags.zitadelOrgId ? { orgId: flags.zitadelOrgId } : {}),
        }),
        projectId: flags.zitadelProjectId!,
      });
      const nc = flags.wait ? await connectCli(flags, log) : undefined;
      try {
        const result = await enrollDevice({
          target,
          deviceId: flags.deviceId,
          labels,
          natsUrls: deviceUrls,
          credentials,
          packages,
          ...(deviceKey !== undefined ? { deviceKey } : {}),
          ...(identity ? { identity } : {}),
          confirm: (path, diff) =>
            flags.yes
              ? Promise.resolve(true)
              : askYesNo(`${path} on ${target.description} differs:\n${diff}`, "Overwrite it?"),
          ...(nc ? { nats: nc } : {}),
          heartbeatTimeoutMs: flags.heartbeatTimeout * 1000,
          report: printLine,
          log,
        });
        printLine(
          result.changed === 0
            ? `${flags.deviceId} was already enrolled: nothing changed`
            : `${flags.deviceId} is enrolled (${result.changed} of ${result.steps} steps changed something)`,
        );
      } finally {
        await nc?.close();
      }
    });
}

export function deviceCommand(): Command {
  const device = new Command("device").description("Set up and look after devices");
  device.addCommand(enrollCommand());
  return device;
}
