/**
 * What `device enroll` and `vm provision` share: the flags that say how a device is enrolled
 * (labels, package, the device's NATS and identity, Zitadel) and the run that reads them,
 * validates them before anything is touched, and enrolls a target.
 */
import { Option } from "@commander-js/extra-typings";
import * as z from "zod";
import {
  describeIssues,
  DeviceAnnotations,
  DeviceDescription,
  DeviceLabels,
  formatLabels,
  type Labels,
  unselectableLabels,
  validateIdentifier,
} from "../core/mod.ts";
import { printLine } from "../adapters/output.ts";
import { PIN_COMMAND, PIN_PATTERN, secretTransportProblem } from "../adapters/nats/mod.ts";
import { askYesNo } from "../adapters/host/terminal.ts";
import type { Target } from "../adapters/host/target.ts";
import type { Logger } from "../adapters/logger.ts";
import type { CredentialsConfig } from "../agent/config.ts";
import { enrollDevice } from "../enroll/enroll.ts";
import { NatsDeviceLabelStore } from "../cli/device_labels.ts";
import {
  identityProvider,
  planZitadel,
  ZitadelFlags,
  zitadelOptions,
  type ZitadelPlan,
} from "./_zitadel.ts";
import { readSecret } from "./_secret.ts";
import {
  connectFromFlags,
  NatsConnectionFlags,
  natsConnectionOptions,
  natsServers,
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

/**
 * The enroll flags, for `command.addOption()`: how the device is set up, and the NATS
 * connection (with the admin's identity) to wait for its first heartbeat on.
 */
export function enrollOptions(): Option[] {
  return [
    new Option(
      "--label <key=value>",
      "a device label deployments select on, kept by the control plane (fleet device label changes it); the value is a Kubernetes label value (repeat for more)",
    ).argParser(collect).default([] as string[], "none").env("FLEET_DEVICE_LABEL"),
    new Option("--description <text>", "free text about the device, shown and never selected")
      .env("FLEET_DEVICE_DESCRIPTION"),
    new Option(
      "--annotation <key=text>",
      "free text kept under a label-like key, shown and never selected (repeat for more)",
    ).argParser(collect).default([] as string[], "none").env("FLEET_DEVICE_ANNOTATION"),
    new Option("--package-dir <dir>", "where fleet_<version>_<arch>.deb are").default("dist")
      .env("FLEET_PACKAGE_DIR"),
    new Option(
      "--device-nats-url <urls>",
      "NATS URLs the device connects to, comma-separated (default: --nats-url)",
    ).env("FLEET_DEVICE_NATS_URL"),
    new Option(
      "--device-nats-ca <file>",
      "CA of the NATS server's certificate, copied to the device (default: --nats-ca)",
    ).env("FLEET_DEVICE_NATS_CA"),
    new Option(
      "--device-nats-pin <sha256>",
      "NATS server public-key pin for the device, sha256//<base64> (default: --nats-pin)",
    ).env("FLEET_DEVICE_NATS_PIN"),
    new Option("--device-key <path>", "the device's private key file (OIDC identity)")
      .env("FLEET_DEVICE_KEY"),
    new Option("--device-oidc-issuer <url>", "OIDC issuer the device gets its tokens from")
      .env("FLEET_DEVICE_OIDC_ISSUER"),
    new Option("--device-oidc-audience <audience>", "audience of the device's tokens")
      .env("FLEET_DEVICE_OIDC_AUDIENCE"),
    new Option("--device-nats-user <user>", "shared NATS user for the device (development only)")
      .env("FLEET_DEVICE_NATS_USER"),
    new Option(
      "--device-nats-password-file <path>",
      "file holding its password, - for standard input (development only)",
    ).env("FLEET_DEVICE_NATS_PASSWORD_FILE"),
    ...zitadelOptions(),
    new Option("-y, --yes", "overwrite a different config on the device without asking")
      .env("FLEET_ENROLL_YES"),
    new Option("--no-wait", "do not wait for the first heartbeat").env("FLEET_ENROLL_NO_WAIT"),
    new Option("--heartbeat-timeout <seconds>", "how long to wait for the first heartbeat")
      .argParser(seconds).default(120).env("FLEET_HEARTBEAT_TIMEOUT"),
    ...natsConnectionOptions(),
  ];
}

const optional = z.string().optional();

/** The values of {@link enrollOptions} as commander hands them over. */
const EnrollFlagsSchema = NatsConnectionFlags.extend(ZitadelFlags.shape).extend({
  label: z.array(z.string()),
  description: optional,
  annotation: z.array(z.string()),
  packageDir: z.string(),
  deviceNatsUrl: optional,
  deviceNatsCa: optional,
  deviceNatsPin: optional,
  deviceKey: optional,
  deviceOidcIssuer: optional,
  deviceOidcAudience: optional,
  deviceNatsUser: optional,
  deviceNatsPasswordFile: optional,
  yes: z.boolean().optional(),
  wait: z.boolean(),
  heartbeatTimeout: z.number(),
});
type EnrollFlags = z.infer<typeof EnrollFlagsSchema>;

/** Everything an enroll needs from the flags, checked; nothing is contacted yet. */
export interface EnrollPlan {
  deviceId: string;
  labels: Labels;
  description: string | undefined;
  annotations: DeviceAnnotations;
  deviceUrls: string[];
  /** The CA (PEM) and pin the device's agent checks the NATS server against. */
  deviceNatsCa: string | undefined;
  deviceNatsPin: string | undefined;
  credentials: CredentialsConfig;
  deviceKey: string | undefined;
  packages: Record<string, { path: string; version: string }>;
  /** Where the device's identity is created, and how the admin signs in there. */
  zitadel: ZitadelPlan | undefined;
  flags: EnrollFlags;
}

/**
 * Reads and validates the enroll flags for `deviceId` out of a command's option values (added
 * with {@link enrollOptions}, so commander's typing does not see them): labels, credentials,
 * key file and the packages. `defaultDeviceUrls` maps --nats-url to what the device should
 * use when --device-nats-url is not given.
 *
 * @throws {UsageError} naming the flag and the rule.
 */
export async function planEnroll(
  deviceId: string,
  optionValues: object,
  defaultDeviceUrls: (urls: string[]) => string[] = (urls) => urls,
): Promise<EnrollPlan> {
  validateIdentifier("device id", deviceId);
  const flags = EnrollFlagsSchema.parse(optionValues);
  if (flags.deviceNatsPasswordFile === "-" && flags.zitadelTokenFile === "-") {
    throw new UsageError(
      "--device-nats-password-file and --zitadel-token-file cannot both read standard input: " +
        "give one of them as a file (mode 0600)",
    );
  }
  const labels = parseLabels(flags.label);
  const description = flags.description === undefined
    ? undefined
    : checkedFlag("--description", DeviceDescription, flags.description);
  const annotations = checkedFlag(
    "--annotation",
    DeviceAnnotations,
    parsePairs("--annotation", flags.annotation),
  );
  const deviceUrls = flags.deviceNatsUrl === undefined
    ? defaultDeviceUrls(natsServers(flags))
    : natsServers({ natsUrl: flags.deviceNatsUrl });
  let credentials: CredentialsConfig = { type: "none" };
  const issuer = flags.deviceOidcIssuer ?? flags.zitadelUrl;
  if (issuer !== undefined) {
    credentials = {
      type: "oidc",
      issuer,
      key_file: "/etc/fleet-agent/device-key.json",
      grant: "jwt-bearer",
      ...(flags.deviceOidcAudience ? { audience: flags.deviceOidcAudience } : {}),
      // A machine user created in Zitadel gets its roles only when its tokens ask for them.
      ...(flags.zitadelUrl !== undefined && flags.zitadelProjectId !== undefined
        ? { provider: "zitadel", project_id: flags.zitadelProjectId }
        : { provider: "generic" }),
    };
  } else if (flags.deviceNatsUser !== undefined) {
    if (flags.deviceNatsPasswordFile === undefined) {
      throw new UsageError("--device-nats-user needs --device-nats-password-file");
    }
    credentials = {
      type: "userpass",
      user: flags.deviceNatsUser,
      password: await readSecret("--device-nats-password-file", flags.deviceNatsPasswordFile),
    };
  }
  if (flags.deviceKey !== undefined && credentials.type !== "oidc") {
    throw new UsageError("--device-key needs --device-oidc-issuer (the key is an OIDC identity)");
  }
  // The device reaches the NATS the admin reaches unless told otherwise: the same CA and pin.
  const caFile = flags.deviceNatsCa ?? flags.natsCa;
  const pin = flags.deviceNatsPin ?? flags.natsPin;
  if (pin !== undefined && !PIN_PATTERN.test(pin)) {
    throw new UsageError(
      `Invalid --device-nats-pin ${JSON.stringify(pin)}: give sha256// and the base64 SHA-256 ` +
        `of the server's public key, printed by: ${PIN_COMMAND}`,
    );
  }
  if (credentials.type === "oidc") {
    // Refused before anything is contacted: the agent would refuse to send its token.
    const problem = secretTransportProblem(deviceUrls, {
      ...(caFile !== undefined ? { caFile } : {}),
      ...(pin !== undefined ? { pin } : {}),
    });
    if (problem !== undefined) throw new UsageError(`The device's NATS: ${problem}`);
  }
  const zitadel = await planZitadel(flags);
  const deviceKey = flags.deviceKey === undefined ? undefined : await readKeyFile(flags.deviceKey);
  return {
    deviceId,
    labels,
    description,
    annotations,
    deviceUrls,
    deviceNatsCa: caFile === undefined ? undefined : await readKeyFile(caFile, "--device-nats-ca"),
    deviceNatsPin: pin,
    credentials,
    deviceKey,
    packages: await findPackages(flags.packageDir),
    zitadel,
    flags,
  };
}

/** Enrolls `target` as planned, printing a line per step and a summary. */
export async function runEnroll(target: Target, plan: EnrollPlan, log: Logger): Promise<void> {
  const flags = plan.flags;
  const identity = plan.zitadel ? await identityProvider(plan.zitadel) : undefined;
  const labelled = Object.keys(plan.labels).length > 0;
  const nc = flags.wait || labelled ? await connectFromFlags(flags, log) : undefined;
  try {
    // Targeting uses the registry, not the labels in the agent's config (shown only).
    if (nc && labelled) {
      const { labels, changed } = await new NatsDeviceLabelStore(nc).edit(
        plan.deviceId,
        (current) => ({ ...current, ...plan.labels }),
      );
      printLine(
        `labels of ${plan.deviceId} ${changed ? "set" : "unchanged"}: ${formatLabels(labels)}`,
      );
    }
    const result = await enrollDevice({
      target,
      deviceId: plan.deviceId,
      labels: plan.labels,
      ...(plan.description === undefined ? {} : { description: plan.description }),
      annotations: plan.annotations,
      natsUrls: plan.deviceUrls,
      ...(plan.deviceNatsCa !== undefined ? { natsCa: plan.deviceNatsCa } : {}),
      ...(plan.deviceNatsPin !== undefined ? { natsPin: plan.deviceNatsPin } : {}),
      credentials: plan.credentials,
      packages: plan.packages,
      ...(plan.deviceKey !== undefined ? { deviceKey: plan.deviceKey } : {}),
      ...(identity ? { identity } : {}),
      confirm: (path, diff) =>
        flags.yes
          ? Promise.resolve(true)
          : askYesNo(`${path} on ${target.description} differs:\n${diff}`, "Overwrite it?"),
      ...(nc && flags.wait ? { nats: nc } : {}),
      heartbeatTimeoutMs: flags.heartbeatTimeout * 1000,
      report: printLine,
      log,
    });
    printLine(
      result.changed === 0
        ? `${plan.deviceId} was already enrolled: nothing changed`
        : `${plan.deviceId} is enrolled (${result.changed} of ${result.steps} steps changed something)`,
    );
  } finally {
    await nc?.close();
  }
}

/** `key=value` flags as a record; the value may hold '=' and spaces. */
function parsePairs(flag: string, pairs: string[]): Record<string, string> {
  const parsed: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new UsageError(`${flag} "${pair}" is not key=value`);
    parsed[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return parsed;
}

function checkedFlag<T>(flag: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`Invalid ${flag}: ${describeIssues(result.error)}`);
  return result.data;
}

/**
 * The --label flags; a value must be a Kubernetes label value, since selectors match labels
 * exactly: free text is refused with a valid form to use, and where to keep the text instead.
 */
function parseLabels(pairs: string[]): Labels {
  const labels = checkedFlag("--label", DeviceLabels, parsePairs("--label", pairs));
  const [bad] = unselectableLabels(labels);
  if (bad) {
    const instead = bad.suggestion === ""
      ? "use letters and digits"
      : `use --label ${bad.key}=${bad.suggestion}`;
    throw new UsageError(
      `Invalid --label ${bad.key}=${JSON.stringify(bad.value)}: ${bad.problem}, so that ` +
        `deployments can select the device by it; ${instead}, and keep the text with ` +
        `--annotation ${bad.key}=${JSON.stringify(bad.value)} or --description`,
    );
  }
  return labels;
}

async function readKeyFile(path: string, flag = "--device-key"): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`${flag} ${path} does not exist`);
    }
    throw error;
  }
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
