/**
 * The {@link RolloutActionFeed} on NATS: the `fleet-rollout-actions` stream, read oldest first
 * by an ordered consumer (no durable state on the server: every start reads every kept action,
 * and the controller skips those its status already took). Who asked is the subject's last
 * token, which the broker enforces (DESIGN.md §9); a subject or body that is not an action is
 * logged and skipped.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { parseJsonWith } from "../core/errors.ts";
import { validateIdentifier } from "../core/ids.ts";
import {
  parseRolloutActionSubject,
  ROLLOUT_ACTIONS_STREAM,
  RolloutActionRequest,
} from "../core/rollout_actions.ts";
import type { Logger } from "../adapters/logger.ts";
import { untilAborted } from "../adapters/timers.ts";
import { ensureRolloutActionsStream } from "../adapters/nats/mod.ts";
import type { RolloutActionEvent, RolloutActionFeed } from "./rollout_action_feed.ts";

export class NatsRolloutActions implements RolloutActionFeed {
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #replicas: number;

  /** @param replicas copies of the stream, should this feed create it */
  constructor(options: { nc: NatsConnection; log: Logger; replicas: number }) {
    this.#nc = options.nc;
    this.#log = options.log;
    this.#replicas = options.replicas;
  }

  async *follow(signal: AbortSignal): AsyncIterable<RolloutActionEvent | { ready: true }> {
    await ensureRolloutActionsStream(this.#nc, this.#replicas);
    const js = jetstream(this.#nc, { checkAPI: false });
    const consumer = await js.consumers.get(ROLLOUT_ACTIONS_STREAM);
    // Kept actions are read up to the one that leaves none pending; an empty stream has none.
    const { num_pending } = await consumer.info(true);
    let ready = false;
    if (num_pending === 0) {
      ready = true;
      yield { ready: true };
    }
    if (signal.aborted) return;
    const messages = await consumer.consume();
    try {
      for await (const msg of untilAborted(messages, signal)) {
        const event = this.#parse(msg);
        if (event !== undefined) yield event;
        if (!ready && msg.info.pending === 0) {
          ready = true;
          yield { ready: true };
        }
      }
    } finally {
      // Not close(): nats.js settles it through the messages' own queue, so messages that were
      // never read (the signal aborted while they were being set up) never said closed, and an
      // operator told to stop during its start waited for them for ever.
      messages.stop();
    }
  }

  /** The action `msg` holds; undefined (logged) when its subject or body is not one. */
  #parse(msg: JsMsg): RolloutActionEvent | undefined {
    const where = `rollout action ${msg.seq} on "${msg.subject}"`;
    const parsed = parseRolloutActionSubject(msg.subject);
    try {
      if (parsed === undefined) throw new Error("its subject is not an action's");
      validateIdentifier("namespace", parsed.ref.namespace);
      validateIdentifier("deployment name", parsed.ref.name);
      validateIdentifier("principal", parsed.principal);
      const request = parseJsonWith(RolloutActionRequest, msg.data, "body");
      return {
        seq: msg.seq,
        ref: parsed.ref,
        action: {
          verb: request.verb,
          by: parsed.principal,
          ...(request.batch === undefined ? {} : { batch: request.batch }),
        },
        at: msg.time.getTime(),
      };
    } catch (error) {
      this.#log.warn(`Ignoring ${where}: ${(error as Error).message}`);
      return undefined;
    }
  }
}
