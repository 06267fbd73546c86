/**
 * Answers this device's commands (DESIGN.md §9): subscribes to `device-commands.<ownId>.>`,
 * reads the verb and the requester's principal from the subject (the broker lets each identity
 * publish only in its own name), checks the request, hands it to the verb's handler and
 * replies. A malformed message gets a refusal naming the rule, never a crash. Runs beside the
 * reconcile loop, so it answers while a pass is under way.
 *
 * Every command, refused ones included, leaves an audit record on
 * `fleet-audit.command.<ownId>` before the reply goes out. The device writes it because only
 * the device knows how the command ended (which containers restarted, what failed); the broker
 * lets it write only under its own id, and the principal in the record is the subject's, so a
 * device can misreport only its own commands, never another device's or who asked.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import {
  auditArguments,
  type AuditRecord,
  type CommandReply,
  type CommandVerb,
  parseCommandSubject,
  RequestOf,
  type ResultOf,
} from "../core/device_commands.ts";
import { parseJsonWith } from "../core/errors.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../adapters/logger.ts";
import type * as z from "zod";

/** Who asked: the principal token of the subject, as the broker enforced it. */
export interface CommandOrigin {
  principal: string;
}

/**
 * The handler of each verb: the checked request and who asked in, the result out; throwing is
 * a failure.
 */
export type CommandHandlers = {
  [V in CommandVerb]: (
    request: z.infer<typeof RequestOf[V]>,
    origin: CommandOrigin,
  ) => Promise<z.infer<typeof ResultOf[V]>>;
};

/** A handler's refusal: the request was understood and declined (it names why). */
export class CommandRefused extends Error {
  override name = "CommandRefused";
}

export interface CommandResponderOptions {
  nc: NatsConnection;
  deviceId: string;
  handlers: CommandHandlers;
  /** Stores an audit record; a failure is logged, the reply still goes out. */
  audit: (record: AuditRecord) => Promise<void>;
  log: Logger;
  clock: Clock;
}

/** Subscribes and answers until `stop()` (or the connection closes). */
export class CommandResponder {
  readonly #options: CommandResponderOptions;
  readonly #sub: Subscription;

  constructor(options: CommandResponderOptions) {
    this.#options = options;
    this.#sub = options.nc.subscribe(`device-commands.${options.deviceId}.>`, {
      callback: (error, msg) => {
        if (error) {
          options.log.warn(`The command subscription failed: ${error.message}`);
          return;
        }
        void this.#answer(msg);
      },
    });
  }

  stop(): void {
    this.#sub.unsubscribe();
  }

  async #answer(msg: Msg): Promise<void> {
    const { deviceId, clock, log } = this.#options;
    const startedAt = clock.now();
    const start = clock.monotonic();
    const parsed = parseCommandSubject(msg.subject, deviceId);
    let body: unknown;
    let reply: CommandReply;
    if ("problem" in parsed) {
      reply = { ok: false, outcome: "refused", error: parsed.problem };
    } else {
      try {
        const request = parseJsonWith(RequestOf[parsed.verb], msg.data, `${parsed.verb} request`);
        body = request;
        const handler = this.#options.handlers[parsed.verb] as (
          r: unknown,
          origin: CommandOrigin,
        ) => Promise<unknown>;
        reply = {
          ok: true,
          requestId: request.requestId,
          result: await handler(request, { principal: parsed.principal }),
        };
      } catch (error) {
        const message = (error as Error).message;
        const refused = error instanceof CommandRefused ||
          (error as Error).name === "WireFormatError";
        reply = {
          ok: false,
          ...requestIdOf(msg),
          outcome: refused ? "refused" : "failed",
          error: message,
        };
      }
    }
    const record: AuditRecord = {
      kind: "command",
      deviceId,
      principal: parsed.principal ?? "",
      verb: parsed.verb ?? "",
      ...requestIdOf(msg),
      arguments: auditArguments(body),
      startedAt,
      durationMs: clock.monotonic() - start,
      outcome: reply.ok ? "ok" : reply.outcome,
      ...(reply.ok ? {} : { reason: reply.error }),
    };
    try {
      await this.#options.audit(record);
    } catch (error) {
      log.warn(
        `Could not write the audit record of a ${record.verb} command: ${(error as Error).message}`,
      );
    }
    if (!reply.ok) {
      log.info(`Refused a ${record.verb || "malformed"} command: ${reply.error}`, {
        principal: record.principal,
      });
    }
    if (msg.reply) msg.respond(JSON.stringify(reply));
  }
}

/** The request id of a message, when its body has a well-formed one. */
function requestIdOf(msg: Msg): { requestId?: string } {
  try {
    const id = (JSON.parse(new TextDecoder().decode(msg.data)) as { requestId?: unknown })
      .requestId;
    return typeof id === "string" && id.length <= 64 ? { requestId: id } : {};
  } catch {
    return {};
  }
}
