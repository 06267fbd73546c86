/**
 * libpod's wire formats (only the fields the adapter reads) and their mapping to the
 * adapter's own types. Private to the adapter: zod drops unknown fields, so newer Podman
 * versions that add fields keep working.
 */

import * as z from "zod";
import type {
  ContainerGrants,
  ContainerHealth,
  HealthcheckSpec,
  InspectedContainer,
  InspectedImage,
  ManifestListEntry,
  ObservedContainer,
} from "./types.ts";

/** Podman stores an unset time as Go's zero time; report it as absent. */
function epochMs(ms: number): number | undefined {
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** Only set `key` when there is a value (exactOptionalPropertyTypes forbids `key: undefined`). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** One element of `GET /libpod/containers/json` (podman 4 and 5). */
export const LibpodListedContainerSchema = z.object({
  Id: z.string(),
  Names: z.array(z.string()).nullish(),
  Image: z.string(),
  Labels: z.record(z.string(), z.string()).nullish(),
  State: z.string(),
  ExitCode: z.number().int(),
  /** Unix seconds; Go's zero time (negative) when never started. */
  StartedAt: z.number().nullish(),
  Ports: z.array(z.object({
    host_port: z.number().int(),
    container_port: z.number().int(),
    protocol: z.string(),
    range: z.number().int().nullish(),
  })).nullish(),
}).transform((c): ObservedContainer => ({
  id: c.Id,
  name: c.Names?.[0] ?? c.Id,
  image: c.Image,
  labels: c.Labels ?? {},
  state: c.State,
  exitCode: c.ExitCode,
  ...optional("startedAt", epochMs((c.StartedAt ?? 0) * 1000)),
  ports: (c.Ports ?? []).map((p) => ({
    hostPort: p.host_port,
    containerPort: p.container_port,
    protocol: p.protocol,
    range: Math.max(1, p.range ?? 1),
  })),
}));

/** The answer of `GET /libpod/containers/json`. */
export const LibpodContainerListSchema = z.array(LibpodListedContainerSchema).nullable()
  .transform((list) => list ?? []);

/** The answer of `GET /libpod/containers/{id}/json` (the fields we read). */
export const LibpodContainerInspectSchema = z.object({
  Id: z.string(),
  Name: z.string(),
  ImageName: z.string(),
  Config: z.object({ Labels: z.record(z.string(), z.string()).nullish() }).nullish(),
  State: z.object({
    Status: z.string(),
    ExitCode: z.number().int(),
    /** RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` when unset. */
    StartedAt: z.string().nullish(),
    FinishedAt: z.string().nullish(),
    Error: z.string().nullish(),
  }),
  RestartCount: z.number().int().nullish(),
}).transform((c): InspectedContainer => ({
  id: c.Id,
  name: c.Name,
  image: c.ImageName,
  labels: c.Config?.Labels ?? {},
  state: c.State.Status,
  exitCode: c.State.ExitCode,
  ...optional("startedAt", epochMs(Date.parse(c.State.StartedAt ?? ""))),
  ...optional("finishedAt", epochMs(Date.parse(c.State.FinishedAt ?? ""))),
  ...optional("error", c.State.Error || undefined),
  restartCount: c.RestartCount ?? 0,
}));

/** The network part of `GET /libpod/containers/{id}/json`: the container's addresses. */
export const LibpodContainerNetworkSchema = z.object({
  NetworkSettings: z.object({
    IPAddress: z.string().nullish(),
    Networks: z.record(z.string(), z.object({ IPAddress: z.string().nullish() })).nullish(),
  }).nullish(),
}).transform((c): string | undefined => {
  const settings = c.NetworkSettings;
  const addresses = [
    settings?.IPAddress,
    ...Object.values(settings?.Networks ?? {}).map((n) => n.IPAddress),
  ];
  return addresses.find((a) => typeof a === "string" && a !== "") ?? undefined;
});

/** What `GET /libpod/containers/{id}/json` says the container was given of the host. */
export const LibpodContainerGrantsSchema = z.object({
  Mounts: z.array(z.object({ Type: z.string(), Source: z.string(), RW: z.boolean() })).nullish(),
  HostConfig: z.object({
    Privileged: z.boolean().nullish(),
    NetworkMode: z.string().nullish(),
    PidMode: z.string().nullish(),
  }).nullish(),
}).transform((c): ContainerGrants => ({
  mounts: (c.Mounts ?? []).filter((m) => m.Type === "bind").map((m) => ({
    hostPath: m.Source,
    readOnly: !m.RW,
  })),
  privileged: c.HostConfig?.Privileged === true,
  hostNetwork: c.HostConfig?.NetworkMode === "host",
  hostPid: c.HostConfig?.PidMode === "host",
}));

const LibpodHealthSchema = z.object({
  Status: z.string().nullish(),
  FailingStreak: z.number().int().nullish(),
  /** Oldest first; podman keeps the latest few. */
  Log: z.array(z.object({
    Start: z.string(),
    ExitCode: z.number().int(),
    Output: z.string().nullish(),
  })).nullish(),
});

/**
 * The healthcheck part of `GET /libpod/containers/{id}/json`: `State.Health` (podman 4.3 and 5;
 * older releases said `Healthcheck`). Undefined when the container has no healthcheck.
 */
export const LibpodContainerHealthSchema = z.object({
  State: z.object({
    Health: LibpodHealthSchema.nullish(),
    Healthcheck: LibpodHealthSchema.nullish(),
  }),
}).transform((c): ContainerHealth | undefined => {
  const health = c.State.Health ?? c.State.Healthcheck;
  if (!health?.Status) return undefined;
  const log = health.Log ?? [];
  const last = log.at(-1);
  let passing = log.length;
  while (passing > 0 && log[passing - 1]!.ExitCode === 0) passing--;
  return {
    status: health.Status,
    failingStreak: health.FailingStreak ?? 0,
    ...optional("lastCheckAt", last && epochMs(Date.parse(last.Start))),
    ...optional(
      "passingSince",
      passing < log.length ? epochMs(Date.parse(log[passing]!.Start)) : undefined,
    ),
    lastOutput: (last?.Output ?? "").trim(),
  };
});

const NS_PER_MS = 1_000_000;

/** libpod's `healthconfig` (Docker's HealthConfig: durations in nanoseconds). */
export function healthConfig(check: HealthcheckSpec): Record<string, unknown> {
  return {
    Test: ["CMD", ...check.command],
    Interval: check.intervalMs * NS_PER_MS,
    Timeout: check.timeoutMs * NS_PER_MS,
    Retries: check.retries,
    StartPeriod: check.startPeriodMs * NS_PER_MS,
  };
}

/** The answer of `GET /libpod/images/{name}/json` (the fields we read). */
export const LibpodImageInspectSchema = z.object({
  Id: z.string(),
  Labels: z.record(z.string(), z.string()).nullish(),
  Os: z.string().nullish(),
  Architecture: z.string().nullish(),
  Size: z.number().int().nonnegative(),
}).transform((i): InspectedImage => ({
  id: i.Id,
  labels: i.Labels ?? {},
  os: i.Os ?? "",
  architecture: i.Architecture ?? "",
  size: i.Size,
}));

/** The answer of `GET /libpod/manifests/{name}/json`: a Docker or OCI manifest list. */
export const LibpodManifestListSchema = z.object({
  manifests: z.array(z.object({
    digest: z.string(),
    platform: z.object({ os: z.string(), architecture: z.string() }),
  })).nullish(),
}).transform((list): ManifestListEntry[] =>
  (list.manifests ?? []).map((m) => ({ digest: m.digest, ...m.platform }))
);

/** The answer of `POST /libpod/containers/create`. */
export const LibpodCreateResponseSchema = z.object({ Id: z.string() });

/** The answer of `GET /libpod/exec/{id}/json`: whether it still runs and how it exited. */
export const LibpodExecInspectSchema = z.object({
  Running: z.boolean(),
  ExitCode: z.number().int().nullish(),
});

/** The answer of `GET /libpod/version` (podman 4 and 5). */
export const LibpodVersionSchema = z.object({
  Version: z.string(),
  ApiVersion: z.string(),
  Components: z.array(z.object({
    Name: z.string(),
    Details: z.record(z.string(), z.unknown()).nullish(),
  })).nullish(),
});

/** libpod's error body: `{"cause": "...", "message": "...", "response": 404}`. */
export const LibpodErrorBodySchema = z.object({
  message: z.string().optional(),
  cause: z.string().optional(),
});

/** One line of `GET /libpod/events?stream=false`: a `died` event carries the exit code. */
export const LibpodEventSchema = z.object({
  Actor: z.object({
    Attributes: z.record(z.string(), z.string()).nullish(),
  }).nullish(),
}).transform((e): number | undefined => {
  const code = Number(e.Actor?.Attributes?.["containerExitCode"] ?? NaN);
  return Number.isInteger(code) ? code : undefined;
});

/** One message of a streamed pull or build answer. */
export const LibpodStreamMessageSchema = z.object({
  stream: z.string().optional(),
  error: z.string().optional(),
  errorDetail: z.object({ message: z.string().optional() }).nullish(),
});
