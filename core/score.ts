import * as z from "zod";
import { identifierSchema } from "./ids.ts";
import { describeIssues } from "./errors.ts";
import { Duration, parseDuration } from "./duration.ts";

const PORT_PATTERN = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/;

/** A published port, `"8080:80"`, `"8080:80/udp"` or `"127.0.0.1:8080:80"`. */
export const PortMapping = z.string().superRefine((text, ctx) => {
  const match = PORT_PATTERN.exec(text);
  const numbers = match ? [Number(match[2]), Number(match[3])] : [];
  if (!match || numbers.some((n) => n < 1 || n > 65535)) {
    ctx.addIssue({
      code: "custom",
      message: `port ${
        JSON.stringify(text)
      } must be "hostPort:containerPort" or "hostPort:containerPort/udp", ports 1-65535`,
    });
  }
});

/** A parsed PortMapping. */
export interface ParsedPort {
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

/** Splits a PortMapping string that already passed validation. */
export function parsePort(text: string): ParsedPort {
  const match = PORT_PATTERN.exec(text);
  if (!match) throw new Error(`Unvalidated port ${JSON.stringify(text)}`);
  const port: ParsedPort = {
    hostPort: Number(match[2]),
    containerPort: Number(match[3]),
    protocol: match[4] === "udp" ? "udp" : "tcp",
  };
  if (match[1] !== undefined) port.hostIp = match[1];
  return port;
}

/**
 * Linux's limit on one string passed to a program (MAX_ARG_STRLEN, 32 pages): an environment
 * entry `NAME=value` or an argument, counted in bytes with its terminating NUL. A longer one
 * makes the container's start fail with E2BIG ("argument list too long").
 */
export const MAX_ARG_STRLEN = 131_072;

/** Bytes of `text` in UTF-8, as the kernel counts them. */
function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

const LIMIT_TEXT =
  `Linux accepts at most ${MAX_ARG_STRLEN - 1} bytes (MAX_ARG_STRLEN is ${MAX_ARG_STRLEN} ` +
  `with the terminating NUL)`;

/** The part of a published port that another workload can collide with. */
export type HostPort = Pick<ParsedPort, "hostIp" | "hostPort" | "protocol">;

/** No host IP and 0.0.0.0 bind every address; two different specific IPs are apart. */
function ipsOverlap(a: string | undefined, b: string | undefined): boolean {
  const any = (ip: string | undefined) => ip === undefined || ip === "0.0.0.0";
  return any(a) || any(b) || a === b;
}

/** Whether two published ports cannot both be bound on one host. */
export function portsOverlap(a: HostPort, b: HostPort): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && ipsOverlap(a.hostIp, b.hostIp);
}

/** `8080/tcp`, or `127.0.0.1:8080/tcp` with a host IP. */
export function formatHostPort(port: HostPort): string {
  return `${port.hostIp === undefined ? "" : `${port.hostIp}:`}${port.hostPort}/${port.protocol}`;
}

export const EnvVar = z.object({
  name: z.string().regex(
    /^[A-Za-z_][A-Za-z0-9_]*$/,
    "environment variable names are letters, digits and '_'",
  ),
  value: z.string(),
}).superRefine((env, ctx) => {
  const size = utf8Bytes(`${env.name}=${env.value}`);
  if (size >= MAX_ARG_STRLEN) {
    ctx.addIssue({
      code: "custom",
      path: ["value"],
      message: `environment variable ${
        JSON.stringify(env.name)
      } is ${size} bytes as NAME=value; ${LIMIT_TEXT}`,
    });
  }
});

/** A command or its arguments: each string within MAX_ARG_STRLEN. */
const Argv = z.array(z.string()).superRefine((argv, ctx) => {
  argv.forEach((arg, i) => {
    const size = utf8Bytes(arg);
    if (size >= MAX_ARG_STRLEN) {
      ctx.addIssue({
        code: "custom",
        path: [i],
        message: `this argument is ${size} bytes; ${LIMIT_TEXT} in one argument`,
      });
    }
  });
});

export const VolumeMount = z.object({
  hostPath: z.string().startsWith("/", "hostPath must be an absolute path"),
  containerPath: z.string().startsWith("/", "containerPath must be an absolute path"),
  readOnly: z.boolean().default(false),
});

export const ResourceLimits = z.object({
  memoryMb: z.number().int().positive("memoryMb must be a positive whole number").optional(),
  cpus: z.number().positive("cpus must be more than 0").optional(),
  pids: z.number().int().positive("pids must be a positive whole number").optional(),
});
export type ResourceLimits = z.infer<typeof ResourceLimits>;

export const RestartPolicies = ["no", "always", "on-failure", "unless-stopped"] as const;
export type RestartPolicy = typeof RestartPolicies[number];

/** A duration of a healthcheck that must be at least a second (podman takes 0 as "not set"). */
const PositiveDuration = (field: string) =>
  Duration.refine((text) => parseDuration(text) !== 0, {
    error: `healthcheck ${field} must be at least 1s`,
  });

/**
 * How podman judges a running container healthy: `command` runs in the container (as given, no
 * shell: `["sh", "-c", "..."]` for one) every `interval`; exit 0 is a pass. After `retries`
 * failures in a row (failures within `startPeriod` of a start do not count) it is unhealthy.
 * Defaults are podman's own.
 */
export const Healthcheck = z.object({
  command: Argv.min(1, "healthcheck command is empty"),
  interval: PositiveDuration("interval").default("30s"),
  /** A check that runs longer fails. */
  timeout: PositiveDuration("timeout").default("30s"),
  retries: z.number().int().positive("healthcheck retries must be a positive whole number")
    .default(3),
  startPeriod: Duration.default("0s"),
});
export type Healthcheck = z.infer<typeof Healthcheck>;

/** A healthcheck's durations in milliseconds. */
export interface HealthcheckTimes {
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
}

/** The milliseconds of a validated healthcheck's durations. */
export function healthcheckTimes(check: Healthcheck): HealthcheckTimes {
  return {
    intervalMs: parseDuration(check.interval) ?? 0,
    timeoutMs: parseDuration(check.timeout) ?? 0,
    startPeriodMs: parseDuration(check.startPeriod) ?? 0,
  };
}

export const PodmanService = z.object({
  name: identifierSchema("service name"),
  image: z.string().min(1, "image is required").regex(/^\S+$/, "image must not contain whitespace"),
  ports: z.array(PortMapping).default([]),
  env: z.array(EnvVar).default([]),
  volumes: z.array(VolumeMount).default([]),
  restartPolicy: z.enum(RestartPolicies).default("unless-stopped"),
  command: Argv.optional(),
  args: Argv.optional(),
  /**
   * What the service asks of the device beyond an ordinary container. The device's policy
   * decides (core/device_policy.ts); absent means no.
   */
  privileged: z.boolean().optional(),
  hostNetwork: z.boolean().optional(),
  hostPid: z.boolean().optional(),
  /** Per-container limits; absent ones get the device policy's, larger ones are refused. */
  resources: z.object({ limits: ResourceLimits.optional() }).optional(),
  /** Without one, a running container counts as healthy. */
  healthcheck: Healthcheck.optional(),
});
export type PodmanService = z.infer<typeof PodmanService>;

export const PodmanV0Data = z.object({
  services: z.array(PodmanService).min(1, "at least one service is required"),
}).superRefine((data, ctx) => {
  const seen = new Set<string>();
  data.services.forEach((service, i) => {
    if (seen.has(service.name)) {
      ctx.addIssue({
        code: "custom",
        path: ["services", i, "name"],
        message: `service name ${JSON.stringify(service.name)} is used twice`,
      });
    }
    seen.add(service.name);
  });
  // Two containers of one deployment cannot bind one host port: the second would never start.
  const published: { port: ParsedPort; service: string }[] = [];
  data.services.forEach((service, i) => {
    service.ports.forEach((text, j) => {
      if (!PORT_PATTERN.test(text)) return;
      const port = parsePort(text);
      const other = published.find((p) => portsOverlap(p.port, port));
      if (other) {
        ctx.addIssue({
          code: "custom",
          path: ["services", i, "ports", j],
          message: `host port ${formatHostPort(port)} is already published by service ${
            JSON.stringify(other.service)
          }; each host port can be bound once`,
        });
      }
      published.push({ port, service: service.name });
    });
  });
});
export type PodmanV0Data = z.infer<typeof PodmanV0Data>;

export const PodmanV0 = z.object({ type: z.literal("PodmanV0"), data: PodmanV0Data });

/** The workload types this build understands; the union grows by adding variants. */
export const WorkloadTypes = ["PodmanV0"] as const;

/** The workload envelope, `{ type, data }`. */
export const Score = z.discriminatedUnion("type", [PodmanV0]);
export type Score = z.infer<typeof Score>;

/**
 * A score as carried on the wire: only the envelope is checked, so a DesiredState with a
 * workload type this agent does not know still parses and fails only its own deployment.
 */
export const ScoreEnvelope = z.object({ type: z.string().min(1), data: z.unknown() });
export type ScoreEnvelope = z.infer<typeof ScoreEnvelope>;

/** A workload the device cannot run: unknown type or malformed data. */
export class WorkloadError extends Error {
  override name = "WorkloadError";
}

/** Validates an envelope into a known workload, or explains why it cannot be run. */
export function resolveScore(envelope: ScoreEnvelope): Score {
  if (!(WorkloadTypes as readonly string[]).includes(envelope.type)) {
    throw new WorkloadError(
      `unknown workload type ${JSON.stringify(envelope.type)}; this agent runs ${
        WorkloadTypes.join(", ")
      } (a newer agent may be needed)`,
    );
  }
  const result = Score.safeParse(envelope);
  if (!result.success) {
    throw new WorkloadError(`invalid ${envelope.type} workload: ${describeIssues(result.error)}`);
  }
  return result.data;
}
