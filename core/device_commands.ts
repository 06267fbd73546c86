/**
 * Commands to one device (DESIGN.md §9): request/reply on
 * `device-commands.<deviceId>.<verb>.<principal>`, the requester's identity being the last
 * subject token the broker enforces. The wire types of each verb's request and reply, the audit
 * record every command leaves on `fleet-audit.command.<deviceId>`, and the pure decisions the
 * agent makes on them (parsing the subject, which containers a restart touches, replaying the
 * reply of a retried request). A new verb adds a request and a reply type here and a handler on
 * the agent.
 *
 * Pure: no I/O.
 * @module
 */
import * as z from "zod";
import { identifierProblem, identifierSchema } from "./ids.ts";
import { ContainerLabels, type ObservedContainer } from "./planner.ts";
import { MIN_CREDIT, SessionId } from "./device_sessions.ts";
import { parseSince, SINCE_RULE } from "./since.ts";

/** The verbs a device answers today. */
export const CommandVerbs = ["ping", "diag", "restart", "reconcile", "logs", "exec"] as const;
/** One of {@link CommandVerbs}. */
export type CommandVerb = typeof CommandVerbs[number];

/** The first token of every command subject. */
export const COMMANDS_PREFIX = "device-commands";
/** The JetStream stream that keeps the audit trail, and its subjects' first token. */
export const AUDIT_STREAM = "fleet-audit";

/** What an audit record is of: a command, or a session (its end). */
export const AuditKinds = ["command", "session"] as const;
export type AuditKind = typeof AuditKinds[number];

/** The subject a device writes the audit record of a command or session to. */
export function auditSubject(kind: AuditKind, deviceId: string): string {
  return `${AUDIT_STREAM}.${kind}.${deviceId}`;
}

/** What a command subject says, or why it is not one the device answers. */
export type ParsedCommandSubject =
  | { verb: CommandVerb; principal: string }
  | { problem: string; principal?: string; verb?: string };

/**
 * The verb and principal of `subject`, a message the device `deviceId` received. The broker
 * delivers only `device-commands.<deviceId>.>` to it; anything else is named as the problem.
 */
export function parseCommandSubject(subject: string, deviceId: string): ParsedCommandSubject {
  const tokens = subject.split(".");
  const [prefix, device, verb, principal] = tokens;
  if (tokens.length !== 4 || prefix !== COMMANDS_PREFIX || device !== deviceId) {
    return {
      problem: `"${subject}" is not a command subject of this device: ` +
        `${COMMANDS_PREFIX}.${deviceId}.<verb>.<principal>`,
    };
  }
  const bad = identifierProblem(principal ?? "");
  if (bad !== undefined) return { problem: `invalid principal: ${bad}`, verb: verb ?? "" };
  if (!(CommandVerbs as readonly string[]).includes(verb ?? "")) {
    return {
      problem: `unknown verb "${verb}": this agent answers ${CommandVerbs.join(", ")}`,
      principal: principal!,
      verb: verb ?? "",
    };
  }
  return { verb: verb as CommandVerb, principal: principal! };
}

/**
 * A request id: the requester's, so a retried request (same id) is answered, not done, again.
 * Letters, digits, `-` and `_`, up to 64.
 */
export const RequestId = z.string().regex(
  /^[A-Za-z0-9_-]{1,64}$/,
  "a request id is 1 to 64 letters, digits, - or _",
);

/** Every request: its id. Verbs add their arguments. */
export const CommandRequest = z.object({ requestId: RequestId });
export type CommandRequest = z.infer<typeof CommandRequest>;

/** `restart`: a deployment's containers, or one service's. */
export const RestartRequest = CommandRequest.extend({
  namespace: identifierSchema("namespace"),
  deployment: identifierSchema("deployment name"),
  service: identifierSchema("service name").optional(),
});
export type RestartRequest = z.infer<typeof RestartRequest>;

/**
 * `logs`: a deployment's (or one service's) containers, or with `agent` the agent's own
 * journal. `since` is as a person wrote it ({@link SINCE_RULE}); an age is measured on the
 * device's clock, the one its log timestamps are in.
 */
export const LogsRequest = CommandRequest.extend({
  sessionId: SessionId,
  namespace: identifierSchema("namespace").optional(),
  deployment: identifierSchema("deployment name").optional(),
  service: identifierSchema("service name").optional(),
  agent: z.boolean().optional(),
  tail: z.number().int().nonnegative().optional(),
  since: z.string().max(64).optional(),
  follow: z.boolean().optional(),
  timestamps: z.boolean().optional(),
  /** The first grant: data up to this byte offset. */
  credit: z.number().int().min(MIN_CREDIT),
});
export type LogsRequest = z.infer<typeof LogsRequest>;

/** How a container's log is read (podman's logs API). */
export interface LogReadOptions {
  /** Keep reading as the container writes, until it stops. */
  follow: boolean;
  /** Only the last lines; all when absent. */
  tail?: number | undefined;
  /** Only what was written since then, unix seconds. */
  sinceSeconds?: number | undefined;
  /** Each line starts with its RFC 3339 timestamp. */
  timestamps: boolean;
}

/** `logs` accepted: what the session reads and the limits it keeps. */
export const LogsResult = z.object({
  sessionId: z.string(),
  /** Service names, or `agent` for the agent's journal. */
  sources: z.array(z.string()),
  maxLineBytes: z.number().int(),
  maxBytes: z.number().int(),
});
export type LogsResult = z.infer<typeof LogsResult>;

/** What a logs request reads, or why it reads nothing. */
export type LogSources =
  | { agent: true }
  | { containers: { service: string; containerId: string }[] }
  | { problem: string };

/**
 * The sources of `request` on a device running `observed`: the agent's journal, or the managed
 * containers of the deployment (and service).
 */
export function logSources(
  observed: readonly ObservedContainer[],
  request: LogsRequest,
): LogSources {
  if (request.agent) {
    return request.deployment === undefined
      ? { agent: true }
      : { problem: "ask for the agent's journal or a deployment's logs, not both" };
  }
  if (request.deployment === undefined || request.namespace === undefined) {
    return { problem: "a logs request names a namespace and a deployment, or the agent" };
  }
  return selectedContainers(observed, {
    namespace: request.namespace,
    deployment: request.deployment,
    service: request.service,
  });
}

/**
 * Podman's `since` for `request` at `now` (the device's clock): unix seconds, or a problem
 * naming the rule.
 */
export function sinceSeconds(
  since: string | undefined,
  now: number,
): { seconds?: number } | { problem: string } {
  if (since === undefined) return {};
  const at = parseSince(since, now);
  if (at === undefined) return { problem: `invalid since ${JSON.stringify(since)}: ${SINCE_RULE}` };
  return { seconds: Math.floor(at / 1000) };
}

/** The most arguments an exec's command has, and the longest one. */
export const EXEC_MAX_ARGS = 256;
export const EXEC_MAX_ARG_BYTES = 4096;

/** A terminal's size in character cells. */
export const TerminalSize = z.object({
  rows: z.number().int().min(1).max(10_000),
  cols: z.number().int().min(1).max(10_000),
});
export type TerminalSize = z.infer<typeof TerminalSize>;

/**
 * `exec`: a command in one container of a deployment (`service` names it when there are
 * several), or with `host` on the device itself. `tty` gives it a terminal of `size`; `stdin`
 * keeps its input open for what the requester sends on the session's `in`. `force` ends
 * another person's interactive session to take its place.
 */
export const ExecRequest = CommandRequest.extend({
  sessionId: SessionId,
  namespace: identifierSchema("namespace").optional(),
  deployment: identifierSchema("deployment name").optional(),
  service: identifierSchema("service name").optional(),
  host: z.boolean().optional(),
  command: z.array(
    z.string().max(EXEC_MAX_ARG_BYTES, `an argument is at most ${EXEC_MAX_ARG_BYTES} characters`),
  ).min(1, "give the command to run").max(EXEC_MAX_ARGS, `at most ${EXEC_MAX_ARGS} arguments`),
  tty: z.boolean().optional(),
  stdin: z.boolean().optional(),
  size: TerminalSize.optional(),
  force: z.boolean().optional(),
  /** The first grant of output: data up to this byte offset. */
  credit: z.number().int().min(MIN_CREDIT),
});
export type ExecRequest = z.infer<typeof ExecRequest>;

/** `exec` accepted: where it runs, and the stdin the requester may send before more credit. */
export const ExecResult = z.object({
  sessionId: z.string(),
  /** `<deployment>/<service>`, or `host`. */
  target: z.string(),
  /** Stdin bytes the requester may send now (0 without stdin). */
  stdinCredit: z.number().int().nonnegative(),
  /** The session it took over (`force`), if any. */
  tookOver: z.string().optional(),
});
export type ExecResult = z.infer<typeof ExecResult>;

/** The request type of each verb. */
export const RequestOf = {
  ping: CommandRequest,
  diag: CommandRequest,
  restart: RestartRequest,
  reconcile: CommandRequest,
  logs: LogsRequest,
  exec: ExecRequest,
} as const satisfies Record<CommandVerb, z.ZodType>;

/** `ping`: who answers, how long it has run and its own clock (informative only). */
export const PingResult = z.object({
  agentVersion: z.string(),
  uptimeSeconds: z.number().nonnegative(),
  /** The device's clock, epoch ms: compared with the requester's, never trusted. */
  deviceTime: z.number().int(),
  /** The agent's last round trip to its NATS server, ms; absent before it measured one. */
  natsRttMs: z.number().nonnegative().optional(),
});
export type PingResult = z.infer<typeof PingResult>;

/** One deployment as the agent reports it. */
export const DiagDeployment = z.object({
  namespace: z.string(),
  deployment: z.string(),
  generation: z.number().int(),
  phase: z.string(),
  lastError: z.string().optional(),
});

/** One warning or error the agent logged recently (device clock, informative). */
export const DiagWarning = z.object({
  at: z.number().int(),
  level: z.string(),
  message: z.string(),
});
export type DiagWarning = z.infer<typeof DiagWarning>;

/** `diag`: the agent's config without secrets, podman, the desired-state cache, deployments. */
export const DiagResult = z.object({
  agentVersion: z.string(),
  config: z.object({
    deviceId: z.string(),
    natsUrls: z.array(z.string()),
    /** How it authenticates: the kind, never a password, key or token. */
    credentials: z.string(),
    podmanSocket: z.string(),
    stateDir: z.string(),
    labels: z.record(z.string(), z.string()),
  }),
  podman: z.object({
    healthy: z.boolean(),
    version: z.string().optional(),
    error: z.string().optional(),
  }),
  desiredCache: z.object({
    path: z.string(),
    /** Deployments the agent holds (from NATS, or the cache until NATS answered). */
    deployments: z.number().int().nonnegative(),
    /** Whether it has read its whole desired state from NATS since it started. */
    readFromNats: z.boolean(),
  }),
  deployments: z.array(DiagDeployment),
  warnings: z.array(DiagWarning),
});
export type DiagResult = z.infer<typeof DiagResult>;

/** `restart`: the containers restarted; `repeated` when the request id was seen before. */
export const RestartResult = z.object({
  restarted: z.array(z.object({ service: z.string(), containerId: z.string() })),
  repeated: z.boolean(),
});
export type RestartResult = z.infer<typeof RestartResult>;

/** `reconcile`: the pass that ran for the request. */
export const ReconcileResult = z.object({
  /** Passes the agent has completed since it started, that one included. */
  passes: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
});
export type ReconcileResult = z.infer<typeof ReconcileResult>;

/** The result type of each verb. */
export const ResultOf = {
  ping: PingResult,
  diag: DiagResult,
  restart: RestartResult,
  reconcile: ReconcileResult,
  logs: LogsResult,
  exec: ExecResult,
} as const satisfies Record<CommandVerb, z.ZodType>;

/** A device's answer: the result, or why it refused or failed (a sentence naming the rule). */
export const CommandReply = z.union([
  z.object({ ok: z.literal(true), requestId: z.string(), result: z.unknown() }),
  z.object({
    ok: z.literal(false),
    requestId: z.string().optional(),
    outcome: z.enum(["refused", "failed"]),
    error: z.string(),
  }),
]);
export type CommandReply = z.infer<typeof CommandReply>;

/** How a command ended. */
export const AuditOutcomes = ["ok", "refused", "failed"] as const;

/**
 * One command as the device that received it recorded it, on `fleet-audit.command.<deviceId>`,
 * or one session at its end, on `fleet-audit.session.<deviceId>`. `principal` is the subject's
 * principal token (the broker's word, not the requester's); times are the device's
 * (informative): the stream's own timestamp is the control plane's clock.
 */
export const AuditRecord = z.object({
  kind: z.enum(AuditKinds),
  deviceId: z.string(),
  principal: z.string(),
  verb: z.string(),
  requestId: z.string().optional(),
  /** The request's arguments: identifiers only, never a secret. */
  arguments: z.record(z.string(), z.string()),
  /** Device clock, epoch ms. */
  startedAt: z.number().int(),
  durationMs: z.number().nonnegative(),
  outcome: z.enum(AuditOutcomes),
  /** Why it was refused or failed; how a session ended. */
  reason: z.string().optional(),
  /** A session's id. */
  sessionId: z.string().optional(),
  /** The data bytes a session sent. */
  bytes: z.number().int().nonnegative().optional(),
  /** An exec's exit code. */
  exitCode: z.number().int().optional(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;

/** The arguments of `request` worth auditing: its identifier fields, never anything else. */
export function auditArguments(request: unknown): Record<string, string> {
  if (request === null || typeof request !== "object") return {};
  const out: Record<string, string> = {};
  for (const name of ["namespace", "deployment", "service"]) {
    const value = (request as Record<string, unknown>)[name];
    if (typeof value === "string" && identifierProblem(value) === undefined) {
      out[name] = value;
    }
  }
  return out;
}

/** The containers a request selects (restart, logs), or why there are none. */
export type SelectedContainers =
  | { containers: { service: string; containerId: string }[] }
  | { problem: string };

/**
 * The managed containers of `request`'s deployment (and service) among `observed`, in service
 * order. None is a problem naming what was asked, so a typo is not a silent success.
 */
export function selectedContainers(
  observed: readonly ObservedContainer[],
  request: { namespace: string; deployment: string; service?: string | undefined },
): SelectedContainers {
  const ofDeployment = observed.filter((c) =>
    c.labels[ContainerLabels.namespace] === request.namespace &&
    c.labels[ContainerLabels.deployment] === request.deployment
  );
  const what = `deployment "${request.deployment}" in namespace "${request.namespace}"`;
  if (ofDeployment.length === 0) return { problem: `no container of ${what} runs on this device` };
  const chosen = request.service === undefined
    ? ofDeployment
    : ofDeployment.filter((c) => c.labels[ContainerLabels.service] === request.service);
  if (chosen.length === 0) {
    const services = [...new Set(ofDeployment.map((c) => c.labels[ContainerLabels.service]))];
    return {
      problem: `${what} has no service "${request.service}" here; it has ${services.join(", ")}`,
    };
  }
  return {
    containers: chosen
      .map((c) => ({ service: c.labels[ContainerLabels.service] ?? c.name, containerId: c.id }))
      .sort((a, b) => a.service.localeCompare(b.service)),
  };
}

/**
 * The replies of recent requests by id, so a retried request gets the first answer instead of
 * running twice. Bounded: the oldest is forgotten first; an id is kept `ttlMs` (monotonic).
 */
export class ReplyMemo<T> {
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { at: number; reply: Promise<T> }>();

  constructor(max = 256, ttlMs = 10 * 60_000) {
    this.#max = max;
    this.#ttlMs = ttlMs;
  }

  /**
   * The reply to `key` at `now`: the one already given (or still being worked out), else what
   * `work` returns, remembered. `first` says which.
   */
  reply(key: string, now: number, work: () => Promise<T>): { reply: Promise<T>; first: boolean } {
    for (const [k, e] of this.#entries) {
      if (now - e.at <= this.#ttlMs) break;
      this.#entries.delete(k);
    }
    const known = this.#entries.get(key);
    if (known) return { reply: known.reply, first: false };
    const reply = work();
    this.#entries.set(key, { at: now, reply });
    if (this.#entries.size > this.#max) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return { reply, first: true };
  }
}
