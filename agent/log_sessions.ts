/**
 * `logs` sessions (DESIGN.md §9 "Sessions"): a logs request the device accepts starts a session
 * that streams the selected containers' logs (or the agent's journal) as lines on
 * `device-sessions.<ownId>.<principal>.<sessionId>.out`, only as far as the requester's credit
 * on `.ctl` allows. A source is read no further while the lines queued for sending fill
 * the high-water mark of agent/session.ts, so a slow reader slows Podman down instead of growing
 * the agent.
 *
 * A session ends, with an end frame that says why, when all is sent (`done`), on the
 * requester's cancel, when the requester said nothing for {@link SESSION_IDLE_MS} (`idle`), at
 * the size bound (`limit`), when reading fails, and when the agent stops (`going-away`). Each
 * leaves an audit record on `fleet-audit.session.<ownId>`.
 *
 * The session mechanics (credit, keepalive, idle, end frames, audit) are {@link Session}'s; what
 * a logs session reads is {@link LogSessions}'.
 */
import {
  auditArguments,
  type LogReadOptions,
  logSources,
  type LogsRequest,
  type LogsResult,
  sinceSeconds,
} from "../core/device_commands.ts";
import {
  type DataFrame,
  LineSplitter,
  MAX_LINE_BYTES,
  type SessionEndReason,
} from "../core/device_sessions.ts";
import { JournalUnavailableError } from "../adapters/host/journal.ts";
import { CommandRefused } from "./command_responder.ts";
import type { ContainerRuntime } from "./runtime.ts";
import { Session, type SessionContext } from "./session.ts";

/** The most data one logs session sends. */
export const LOGS_MAX_BYTES = 256 * 1024 * 1024;
/** The most sessions open at once on a device. */
export const MAX_SESSIONS = 16;

/** What logs sessions read. */
export interface LogSessionsOptions extends SessionContext {
  runtime: Pick<ContainerRuntime, "listManaged" | "logs">;
  /** The agent's own journal. @throws {JournalUnavailableError} when there is none to read. */
  journal: (options: LogReadOptions, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;
  /** @default LOGS_MAX_BYTES */
  maxBytes?: number;
}

/** The open logs sessions of a device: opens them (the `logs` verb) and ends them all. */
export class LogSessions {
  readonly #options: LogSessionsOptions;
  readonly #open = new Map<string, Session>();

  constructor(options: LogSessionsOptions) {
    this.#options = options;
  }

  /** Sessions open now. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Accepts `request` from `principal`: opens its sources, then streams them in a session.
   * @throws {CommandRefused} naming why it is declined (nothing to read, a bound, a bad since).
   */
  async open(request: LogsRequest, principal: string): Promise<LogsResult> {
    const o = this.#options;
    if (this.#open.size >= MAX_SESSIONS) {
      throw new CommandRefused(`this device already has ${MAX_SESSIONS} sessions open`);
    }
    if (this.#open.has(request.sessionId)) {
      throw new CommandRefused(`session ${request.sessionId} is already open`);
    }
    const since = sinceSeconds(request.since, o.clock.now());
    if ("problem" in since) throw new CommandRefused(since.problem);
    const sources = logSources(await o.runtime.listManaged(o.deviceId), request);
    if ("problem" in sources) throw new CommandRefused(sources.problem);
    const read: LogReadOptions = {
      follow: request.follow ?? false,
      timestamps: request.timestamps ?? false,
      tail: request.tail,
      sinceSeconds: since.seconds,
    };
    // The sources first: what cannot be read is refused before a session exists (the
    // command's own audit record says why).
    const abort = new AbortController();
    let streams: { name: string; stream: ReadableStream<DataFrame> }[];
    try {
      streams = "agent" in sources
        ? [{ name: "agent", stream: asStdout(await o.journal(read, abort.signal)) }]
        : await Promise.all(sources.containers.map(async (c) => ({
          name: c.service,
          stream: await o.runtime.logs(c.containerId, read, abort.signal),
        })));
    } catch (error) {
      abort.abort();
      if (error instanceof JournalUnavailableError) throw new CommandRefused(error.message);
      throw error;
    }
    const maxBytes = o.maxBytes ?? LOGS_MAX_BYTES;
    const session = new Session(o, {
      principal,
      sessionId: request.sessionId,
      requestId: request.requestId,
      verb: "logs",
      arguments: logsAuditArguments(request),
    }, { credit: request.credit, maxBytes, abort });
    this.#open.set(request.sessionId, session);
    void session.done.then(() => this.#open.delete(request.sessionId));
    // Several sources: each line says whose it is.
    const prefixed = streams.length > 1;
    let left = streams.length;
    for (const { name, stream } of streams) {
      void this.#read(session, stream, prefixed ? `[${name}] ` : "").then(() => {
        if (--left === 0) session.sourcesEnded();
      });
    }
    return {
      sessionId: request.sessionId,
      sources: streams.map((s) => s.name),
      maxLineBytes: MAX_LINE_BYTES,
      maxBytes,
    };
  }

  /** Ends every open session with `reason` and waits for their audit records. */
  async endAll(reason: SessionEndReason, message: string): Promise<void> {
    await Promise.all([...this.#open.values()].map((s) => s.end(reason, message)));
  }

  /**
   * Reads `stream` into `session` line by line, as fast as the session takes them; each output
   * is split on its own, so a stderr line that came between two pieces of a long stdout line
   * is not cut into it.
   */
  async #read(session: Session, stream: ReadableStream<DataFrame>, prefix: string) {
    const splitters = {
      stdout: new LineSplitter(MAX_LINE_BYTES, prefix),
      stderr: new LineSplitter(MAX_LINE_BYTES, prefix),
    };
    const reader = stream.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        const lines = done
          ? [...splitters.stdout.flush(), ...splitters.stderr.flush()]
          : splitters[value.stream].push(value.data);
        if (!await session.push(lines) || done) return;
      }
    } catch (error) {
      if (!session.ended) {
        void session.end("failed", `reading the logs failed: ${(error as Error).message}`);
      }
    } finally {
      void reader.cancel().catch(() => {
        // Already closed or errored: nothing left to release.
      });
    }
  }
}

/** A stream of one output (the agent's journal) as frames of stdout, read only as they are. */
function asStdout(stream: ReadableStream<Uint8Array>): ReadableStream<DataFrame> {
  const reader = stream.getReader();
  return new ReadableStream<DataFrame>({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue({ data: value, stream: "stdout" });
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** A logs request's audit arguments: what was asked, no secret. */
function logsAuditArguments(request: LogsRequest): Record<string, string> {
  return {
    ...auditArguments(request),
    ...(request.agent ? { agent: "true" } : {}),
    ...(request.follow ? { follow: "true" } : {}),
    ...(request.tail === undefined ? {} : { tail: String(request.tail) }),
    ...(request.since === undefined ? {} : { since: request.since }),
  };
}
