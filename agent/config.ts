/** The agent's TOML configuration (`/etc/fleet-agent/config.toml`), validated with zod. */
import * as z from "zod";
import { stringify as stringifyToml } from "smol-toml";
import {
  DEFAULT_DEVICE_POLICY,
  DEFAULT_LIMITS,
  DeviceAnnotations,
  DeviceDescription,
  DeviceLabels,
  type DevicePolicy,
  identifierSchema,
  normalizeHostPath,
  type UnselectableLabel,
  unselectableLabels,
} from "../core/mod.ts";
import { TomlConfigFile, tomlKey } from "../adapters/toml_config.ts";
import {
  natsTlsFromConfig,
  PIN_COMMAND,
  PIN_PATTERN,
  secretTransportProblem,
} from "../adapters/nats/mod.ts";

const Seconds = z.number().positive();

const NatsUrl = z.string().regex(
  /^(nats|tls|ws|wss):\/\/[^\s/]+$|^[^\s:/]+:\d+$/,
  "must look like nats://host:4222 (or tls://, ws://, wss://, or host:port)",
);

export const UserPasswordCredentials = z.object({
  type: z.literal("userpass"),
  user: z.string().min(1),
  password: z.string().min(1).optional(),
  password_file: z.string().min(1).optional(),
}).refine((c) => (c.password === undefined) !== (c.password_file === undefined), {
  message: "set exactly one of password and password_file",
});

export const NoCredentials = z.object({ type: z.literal("none") });

/** A per-device identity: the agent mints OIDC access tokens with its own private key. */
export const OidcCredentials = z.object({
  type: z.literal("oidc"),
  issuer: z.string().url("must be the provider's issuer URL"),
  /** The machine user; optional when the key file names it (Zitadel key JSON `userId`). */
  client_id: z.string().min(1).optional(),
  /** JWK JSON, Zitadel machine-key JSON or PKCS#8 PEM. */
  key_file: z.string().startsWith("/", "must be an absolute path"),
  grant: z.enum(["jwt-bearer", "client-credentials"]).default("jwt-bearer"),
  /** Resource indicator the access token is for (the NATS auth callout's audience). */
  audience: z.string().min(1).optional(),
  scope: z.string().min(1).optional(),
  /**
   * `zitadel`: tokens also ask for the project `project_id` as audience and for its roles,
   * without which Zitadel leaves the roles out of a machine user's token.
   */
  provider: z.enum(["generic", "zitadel"]).default("generic"),
  /** The Fleet project's id in Zitadel; required with `provider = "zitadel"`. */
  project_id: z.string().min(1).optional(),
}).refine((c) => c.provider !== "zitadel" || c.project_id !== undefined, {
  message: 'provider = "zitadel" needs project_id (the id of the Fleet project in Zitadel)',
  path: ["project_id"],
});

/** Credential sources: per-device OIDC in production, user/password for development. */
export const CredentialsConfig = z.discriminatedUnion("type", [
  UserPasswordCredentials,
  NoCredentials,
  OidcCredentials,
]);
export type CredentialsConfig = z.infer<typeof CredentialsConfig>;

const HostPathPrefix = z.string().superRefine((text, ctx) => {
  const normal = normalizeHostPath(text);
  if ("problem" in normal) ctx.addIssue({ code: "custom", message: `${text} ${normal.problem}` });
});

/**
 * What workloads may ask of this device (`[policy]`). Without the table: no host paths, no
 * privileged mode, host network or host PID, and {@link DEFAULT_LIMITS} per container.
 */
export const PolicyConfig = z.object({
  /** Host path prefixes workloads may mount, read-only unless `writable = true`. */
  host_paths: z.array(z.object({
    prefix: HostPathPrefix,
    writable: z.boolean().default(false),
  })).default([]),
  privileged: z.boolean().default(false),
  host_network: z.boolean().default(false),
  host_pid: z.boolean().default(false),
  /** The most each container may use, and what it gets when its deployment asks nothing. */
  limits: z.object({
    memory_mb: z.number().int().positive().default(DEFAULT_LIMITS.memoryMb),
    cpus: z.number().positive().default(DEFAULT_LIMITS.cpus),
    pids: z.number().int().positive().default(DEFAULT_LIMITS.pids),
  }).default({
    memory_mb: DEFAULT_LIMITS.memoryMb,
    cpus: DEFAULT_LIMITS.cpus,
    pids: DEFAULT_LIMITS.pids,
  }),
  /** Registries (or `registry/path` prefixes) images may come from; any when absent. */
  registries: z.array(z.string().min(1)).optional(),
  require_digest: z.boolean().default(false),
});
export type PolicyConfig = z.infer<typeof PolicyConfig>;

export const AgentConfig = z.object({
  device_id: identifierSchema("device id"),
  /**
   * Free-text values are read (configs of older versions held them) but no selector can match
   * them: the agent warns at start ({@link labelWarnings}) and reports them as not selectable.
   */
  labels: DeviceLabels.default({}),
  /** Free text about the device, shown and never selected. */
  description: DeviceDescription.optional(),
  /** Free text under label-like keys, shown and never selected. */
  annotations: DeviceAnnotations.optional(),
  state_dir: z.string().startsWith("/", "must be an absolute path").default("/var/lib/fleet-agent"),
  nats: z.object({
    urls: z.array(NatsUrl).min(1, "list at least one NATS server"),
    /** PEM file of the CA that signed the server's certificate; makes the connection TLS. */
    ca_file: z.string().startsWith("/", "must be an absolute path").optional(),
    /** The server's public-key pin (`sha256//<base64>`); makes the connection TLS. */
    pin: z.string().regex(PIN_PATTERN, `must be sha256//<base64>, printed by: ${PIN_COMMAND}`)
      .optional(),
    credentials: CredentialsConfig.default({ type: "none" }),
  }).superRefine((nats, ctx) => {
    // Caught here, so a config that would send the device's token in clear never starts.
    if (nats.credentials.type !== "oidc") return;
    const problem = secretTransportProblem(nats.urls, natsTlsFromConfig(nats));
    if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["urls"], message: problem });
  }),
  podman: z.object({
    socket: z.string().startsWith("/", "must be an absolute path"),
  }),
  policy: PolicyConfig.optional(),
  /** What people may do on this device through the broker, beyond the roles they hold. */
  remote: z.object({
    /** `fleet exec` into this device's containers (admins only, by role). */
    exec: z.boolean().default(true),
    /** `fleet exec --host`: a shell on the device itself, outside every container. */
    host_shell: z.boolean().default(false),
  }).default({ exec: true, host_shell: false }),
  intervals: z.object({
    heartbeat_seconds: Seconds.default(30),
    relist_seconds: Seconds.default(30),
    republish_seconds: Seconds.default(300),
    orphan_grace_seconds: z.number().nonnegative().default(60),
    stop_timeout_seconds: Seconds.default(10),
    /**
     * A deployment is reported Running only once every container has stayed up (healthy, with
     * a healthcheck) this long without a restart, with its ports published; 0 reports it as
     * soon as they run. A deployment's own spec.minReadySeconds wins.
     */
    min_ready_seconds: z.number().nonnegative().default(5),
  }).default({
    heartbeat_seconds: 30,
    relist_seconds: 30,
    republish_seconds: 300,
    orphan_grace_seconds: 60,
    stop_timeout_seconds: 10,
    min_ready_seconds: 5,
  }),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** The device policy the config sets; the default one when it has no `[policy]` table. */
export function devicePolicy(config: AgentConfig): DevicePolicy {
  const p = config.policy;
  if (p === undefined) return DEFAULT_DEVICE_POLICY;
  return {
    hostPaths: p.host_paths,
    privileged: p.privileged,
    hostNetwork: p.host_network,
    hostPid: p.host_pid,
    limits: { memoryMb: p.limits.memory_mb, cpus: p.limits.cpus, pids: p.limits.pids },
    ...(p.registries === undefined ? {} : { registries: p.registries }),
    requireDigest: p.require_digest,
  };
}

/** The agent's config file, `/etc/fleet-agent/config.toml` on a device. */
export const agentConfigFile = new TomlConfigFile("agent config", AgentConfig);

/** How to give a label a valid value in the config, and keep its text as an annotation. */
function labelFix(label: UnselectableLabel, path: string): string {
  const key = tomlKey(label.key);
  const value = label.suggestion === ""
    ? "a value of letters, digits, '-', '_' and '.'"
    : `${key} = ${JSON.stringify(label.suggestion)}`;
  return `set ${value} under [labels] in ${path}, and keep the text as an annotation: ` +
    `annotations = { ${key} = ${JSON.stringify(label.value)} }`;
}

/**
 * One warning per configured label no selector can match (a config from before label values
 * had to be Kubernetes label values): the label, why, what the agent does, and the fix.
 */
export function labelWarnings(config: AgentConfig, path: string): string[] {
  return unselectableLabels(config.labels).map((label) =>
    `Label ${label.key}=${JSON.stringify(label.value)} in ${path} cannot be selected: ` +
    `${label.problem}. The agent runs as before and reports the label as not selectable, ` +
    `but no deployment can target this device by it. To fix it, ${labelFix(label, path)}` +
    (label.suggestion === ""
      ? ""
      : ` (or enroll the device again with --label ${label.key}=${label.suggestion} ` +
        `--annotation ${label.key}=${JSON.stringify(label.value)})`)
  );
}

/**
 * The config file text for `config` (what `fleet device enroll` writes), validated the way the
 * agent will read it; a new config holds only labels a selector can match. Only the fields
 * given are written, so the agent's defaults stay its own.
 *
 * @throws {ConfigFileError} when `config` is not a valid agent config or holds a label value that
 *   is not a Kubernetes label value.
 */
export function renderAgentConfig(config: z.input<typeof AgentConfig>, path: string): string {
  const bad = unselectableLabels(config.labels ?? {});
  if (bad.length > 0) {
    throw agentConfigFile.error(
      path,
      bad.map((label) => `labels: ${label.problem}; ${labelFix(label, path)}`).join("; "),
    );
  }
  const text = [
    "# Fleet agent configuration. Edit with care: after a change here, a new",
    "# `fleet device enroll` of this device shows the difference and asks before replacing it.",
    stringifyToml(config),
    "",
  ].join("\n");
  agentConfigFile.parse(text, path);
  return text;
}
