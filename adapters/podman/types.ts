/**
 * Shapes that cross the Podman adapter boundary, as zod schemas with their inferred types:
 * what callers ask Podman to create and what they read back. libpod's own wire formats
 * live in `_libpod.ts`.
 */

import * as z from "zod";

// Podman's own rule for container names (libpod `define.NameRegex`).
const containerName = z.string().regex(
  /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/,
  "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
);
const port = z.number().int().min(1).max(65535);

/** A published port: `hostIp:hostPort -> containerPort/protocol`. */
export const PortMappingSchema = z.object({
  hostPort: port,
  containerPort: port,
  protocol: z.enum(["tcp", "udp"]),
  /** Address on the host to bind; all addresses when absent. */
  hostIp: z.string().min(1).optional(),
});
/** A published port: `hostIp:hostPort -> containerPort/protocol`. */
export type PortMapping = z.infer<typeof PortMappingSchema>;

/** A bind mount of a host path into the container. */
export const VolumeMountSchema = z.object({
  hostPath: z.string().startsWith("/", "must be an absolute path"),
  containerPath: z.string().startsWith("/", "must be an absolute path"),
  readOnly: z.boolean(),
});
/** A bind mount of a host path into the container. */
export type VolumeMount = z.infer<typeof VolumeMountSchema>;

/** Podman restart policies, as libpod spells them. */
export const RestartPolicySchema = z.enum(["no", "always", "on-failure", "unless-stopped"]);
/** Podman restart policies, as libpod spells them. */
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

/** What one container may use: memory in MiB, CPUs (fractions allowed) and processes; unlimited when absent. */
export const ContainerLimitsSchema = z.object({
  memoryMb: z.number().int().positive().optional(),
  cpus: z.number().positive().optional(),
  pids: z.number().int().positive().optional(),
});
/** What one container may use: memory in MiB, CPUs (fractions allowed) and processes. */
export type ContainerLimits = z.infer<typeof ContainerLimitsSchema>;

/** A healthcheck podman runs in the container: a command exiting 0 is a pass. */
export const HealthcheckSpecSchema = z.object({
  command: z.array(z.string()).min(1),
  intervalMs: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
  /** Failed checks in a row that make the container unhealthy. */
  retries: z.number().int().positive(),
  /** Failures within this long of a start do not count. */
  startPeriodMs: z.number().int().nonnegative(),
});
/** A healthcheck podman runs in the container: a command exiting 0 is a pass. */
export type HealthcheckSpec = z.infer<typeof HealthcheckSpecSchema>;

/** Everything the adapter needs to create one container. */
export const ContainerCreateSpecSchema = z.object({
  name: containerName,
  image: z.string().min(1),
  labels: z.record(z.string(), z.string()),
  env: z.record(z.string(), z.string()),
  ports: z.array(PortMappingSchema),
  volumes: z.array(VolumeMountSchema),
  restartPolicy: RestartPolicySchema,
  /** Replaces the image's entrypoint. */
  command: z.array(z.string()).optional(),
  /** Replaces the image's CMD (the arguments given to the entrypoint). */
  args: z.array(z.string()).optional(),
  limits: ContainerLimitsSchema.optional(),
  privileged: z.boolean().optional(),
  /** Shares the host's network namespace instead of its own. */
  hostNetwork: z.boolean().optional(),
  /** Shares the host's PID namespace instead of its own. */
  hostPid: z.boolean().optional(),
  healthcheck: HealthcheckSpecSchema.optional(),
});
/** Everything the adapter needs to create one container. */
export type ContainerCreateSpec = z.infer<typeof ContainerCreateSpecSchema>;

/** A published port as Podman lists it: `hostPort` up to `hostPort + range - 1`. */
export const PublishedPortSchema = z.object({
  hostPort: z.number().int(),
  containerPort: z.number().int(),
  protocol: z.string(),
  /** How many consecutive ports the entry covers. */
  range: z.number().int().positive(),
});
/** A published port as Podman lists it: `hostPort` up to `hostPort + range - 1`. */
export type PublishedPort = z.infer<typeof PublishedPortSchema>;

/** A container as listed by Podman, in our own names. */
export const ObservedContainerSchema = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string(),
  labels: z.record(z.string(), z.string()),
  /** As Podman reports it: `"running"`, `"exited"`, `"created"`, `"paused"`, ... */
  state: z.string(),
  exitCode: z.number().int(),
  /** Epoch milliseconds of the last start; absent when never started. */
  startedAt: z.number().optional(),
  /** The ports Podman has published for it. */
  ports: z.array(PublishedPortSchema),
});
/** A container as listed by Podman, in our own names. */
export type ObservedContainer = z.infer<typeof ObservedContainerSchema>;

/** A container as inspected: the listed fields plus how its last run ended. */
export const InspectedContainerSchema = ObservedContainerSchema.omit({ ports: true }).extend({
  /** Epoch milliseconds of the last exit; absent when it has not exited yet. */
  finishedAt: z.number().optional(),
  /** Podman's error for the last start attempt, when there was one. */
  error: z.string().optional(),
  /** How often its restart policy has restarted it. */
  restartCount: z.number().int().nonnegative(),
});
/** A container as inspected: the listed fields plus how its last run ended. */
export type InspectedContainer = z.infer<typeof InspectedContainerSchema>;

/** A container's healthcheck as podman last judged it. */
export const ContainerHealthSchema = z.object({
  /** `starting`, `healthy` or `unhealthy`. */
  status: z.string(),
  /** Failed checks in a row. */
  failingStreak: z.number().int().nonnegative(),
  /** Epoch ms the latest check started; absent when none ran. */
  lastCheckAt: z.number().optional(),
  /**
   * Epoch ms the oldest logged check of the passing streak that ends with the latest check
   * started; absent when the latest check failed or none ran.
   */
  passingSince: z.number().optional(),
  /** The latest check's output, trimmed. */
  lastOutput: z.string(),
});
/** A container's healthcheck as podman last judged it. */
export type ContainerHealth = z.infer<typeof ContainerHealthSchema>;

/** What a container was given of the host: its bind mounts and the host namespaces it shares. */
export const ContainerGrantsSchema = z.object({
  mounts: z.array(z.object({ hostPath: z.string(), readOnly: z.boolean() })),
  privileged: z.boolean(),
  hostNetwork: z.boolean(),
  hostPid: z.boolean(),
});
/** What a container was given of the host: its bind mounts and the host namespaces it shares. */
export type ContainerGrants = z.infer<typeof ContainerGrantsSchema>;

/** A local image as inspected. */
export const InspectedImageSchema = z.object({
  /** Image id (hex digest without `sha256:`). */
  id: z.string(),
  labels: z.record(z.string(), z.string()),
  /** Platform of the image's config, e.g. `linux` and `arm64`. */
  os: z.string(),
  architecture: z.string(),
  /** Bytes of its layers, uncompressed, as stored. */
  size: z.number().int().nonnegative(),
});
/** A local image as inspected. */
export type InspectedImage = z.infer<typeof InspectedImageSchema>;

/** One image of a manifest list (an image index). */
export const ManifestListEntrySchema = z.object({
  /** `sha256:<hex>` of the image's manifest. */
  digest: z.string(),
  os: z.string(),
  architecture: z.string(),
});
/** One image of a manifest list (an image index). */
export type ManifestListEntry = z.infer<typeof ManifestListEntrySchema>;
