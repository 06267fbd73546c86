/**
 * A list-then-watch loop that survives API server restarts and 410 Gone, and never hands
 * its consumer the same unchanged object twice.
 */

import type { Logger } from "../logger.ts";
import { sleep } from "../timers.ts";
import type { KubeClient } from "./client.ts";
import { KubeApiError, KubeGoneError, KubeUnavailableError } from "./errors.ts";
import type { KubeList, KubeObject, ResourceType, WatchEvent } from "./types.ts";
import { errorMessage } from "../../core/errors.ts";

/**
 * What an informer yields. `ready` follows the initial list (`restarted: false`) and every
 * relist after 410 Gone (`restarted: true`): at that point the consumer has seen the whole
 * current state.
 */
export type InformerEvent<T = KubeObject> =
  | { type: "upsert"; object: T }
  | { type: "delete"; object: T }
  | { type: "ready"; restarted: boolean };

/** A change to one object: what a relist or a watch event turns into. */
export type InformerChange<T = KubeObject> = Extract<
  InformerEvent<T>,
  { type: "upsert" | "delete" }
>;

/** Options of {@linkcode informer}. */
export interface InformerOptions {
  /** Namespace to follow; omitted = all namespaces. */
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /** Aborting ends the iteration. */
  signal: AbortSignal;
  /** Outages and recoveries are logged here, once each, in plain words. */
  logger: Logger;
  /** On 410 Gone, relist and yield the difference (always on; accepted for clarity). */
  resyncOnGone?: true;
  /** Retry delays after a failure: doubling from `initialMs` up to `maxMs`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Ask the server to end each watch after this long; it is resumed at once. @default 60 */
  watchTimeoutSeconds?: number;
}

/** Short, so a connection that died silently is noticed within a minute and a half (the
 * client gives a watch 15 s beyond its timeout); re-watching resumes without a relist. */
const DEFAULT_WATCH_TIMEOUT_SECONDS = 60;
const DEFAULT_INITIAL_BACKOFF_MS = 1000;
const DEFAULT_MAX_BACKOFF_MS = 5000;
const REMINDER_EVERY_MS = 60_000;
/** A watch that ends sooner than this with no event counts as a failure (no tight loop). */
const SHORTEST_HEALTHY_WATCH_MS = 1000;

/**
 * Follows every object of `type`: lists them (each an `upsert`, then `ready`), then
 * watches from the list's resourceVersion, remembering the newest version seen (bookmarks
 * included).
 *
 * - A closed stream or a broken connection (API server restart) is resumed from the last
 *   version, with backoff (1 s doubling to 5 s). The outage is logged once when it starts
 *   and once when it ends (plus a reminder each minute while it lasts).
 * - 410 Gone means that version is no longer kept: the informer relists and yields only
 *   the difference to what it had (upserts for new or changed objects — by
 *   resourceVersion —, deletes for vanished ones), then `ready` with `restarted: true`.
 * - An event for an object at a version already yielded is dropped.
 *
 * Failures while the server is unreachable or answering 5xx/429 are retried; 401, 403 and
 * 404 are retried during an outage (a restarting server answers them until its caches
 * are warm) but thrown on the first list, where they mean missing RBAC or a missing CRD.
 * The iteration ends when `options.signal` aborts.
 *
 * @throws {KubeApiError} for a refusal that retrying cannot fix (see above).
 */
export async function* informer<T extends KubeObject = KubeObject>(
  client: KubeClient,
  type: ResourceType,
  options: InformerOptions,
): AsyncGenerator<InformerEvent<T>, void, undefined> {
  const log = options.logger;
  const scope = describeScope(type, options.namespace);
  const initialMs = options.backoff?.initialMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  const maxMs = options.backoff?.maxMs ?? DEFAULT_MAX_BACKOFF_MS;
  // Our own controller, so leaving the loop early also cancels the watch request.
  const controller = new AbortController();
  const signal = controller.signal;
  const onAbort = () => controller.abort();
  options.signal.addEventListener("abort", onAbort);
  if (options.signal.aborted) controller.abort();

  let outage: { since: number; remindedAt: number } | undefined;
  let delayMs = initialMs;
  let retryPermissions = false;

  /** Logs the first failure of an outage (and reminders); sleeps the backoff. */
  const failed = async (err: unknown, action: "list" | "watch"): Promise<void> => {
    const now = Date.now();
    const message = errorMessage(err);
    if (outage === undefined) {
      outage = { since: now, remindedAt: now };
      log.warn(`Cannot ${action} ${scope}; retrying until the API server is back: ${message}`);
    } else if (now - outage.remindedAt >= REMINDER_EVERY_MS) {
      outage.remindedAt = now;
      const seconds = Math.round((now - outage.since) / 1000);
      log.warn(`Still cannot ${action} ${scope} after ${seconds} s: ${message}`);
    }
    await sleep(delayMs, signal);
    delayMs = Math.min(delayMs * 2, maxMs);
  };

  const recovered = (): void => {
    delayMs = initialMs;
    if (outage === undefined) return;
    const seconds = ((Date.now() - outage.since) / 1000).toFixed(1);
    outage = undefined;
    log.info(`Watching ${scope} again after ${seconds} s`);
  };

  const retryable = (err: unknown): boolean => {
    if (err instanceof KubeUnavailableError) return true;
    if (!(err instanceof KubeApiError)) return false;
    if (err.status >= 500 || err.status === 429) return true;
    return retryPermissions && [401, 403, 404].includes(err.status);
  };

  /** Lists until it works; undefined when aborted. */
  const listUntilDone = async (): Promise<KubeList<T> | undefined> => {
    while (!signal.aborted) {
      try {
        const listed = await client.list<T>(type, {
          namespace: options.namespace,
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
        });
        return listed;
      } catch (err) {
        if (signal.aborted) return undefined;
        if (!retryable(err)) throw err;
        await failed(err, "list");
      }
    }
    return undefined;
  };

  try {
    const first = await listUntilDone();
    if (first === undefined) return;
    recovered();
    let store = new Map<string, T>();
    for (const object of first.items) {
      store.set(objectKey(object), object);
      yield { type: "upsert", object };
    }
    yield { type: "ready", restarted: false };
    let resourceVersion = first.resourceVersion;
    // From here on, 401/403/404 most likely come from a server still warming up.
    retryPermissions = true;

    while (!signal.aborted) {
      const openedAt = Date.now();
      let events = 0;
      try {
        const stream = await client.openWatch<T>(type, {
          namespace: options.namespace,
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          resourceVersion,
          signal,
          timeoutSeconds: options.watchTimeoutSeconds ?? DEFAULT_WATCH_TIMEOUT_SECONDS,
        });
        recovered();
        for await (const event of stream) {
          events++;
          const version = event.object.metadata?.resourceVersion;
          const change = event.type === "BOOKMARK" ? undefined : applyWatchEvent(store, event);
          if (version !== undefined && version !== "") resourceVersion = version;
          if (change !== undefined) yield change;
        }
        if (events === 0 && Date.now() - openedAt < SHORTEST_HEALTHY_WATCH_MS && !signal.aborted) {
          // Closed at once without a word (a server shutting down): do not spin.
          await sleep(delayMs, signal);
          delayMs = Math.min(delayMs * 2, maxMs);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof KubeGoneError) {
          log.info(
            `The watch on ${scope} fell behind what the API server keeps (410 Gone); relisting`,
          );
          const listed = await listUntilDone();
          if (listed === undefined) return;
          recovered();
          const { changes, next } = relistChanges(store, listed.items);
          store = next;
          for (const change of changes) yield change;
          yield { type: "ready", restarted: true };
          resourceVersion = listed.resourceVersion;
          continue;
        }
        if (!retryable(err)) throw err;
        await failed(err, "watch");
      }
    }
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

/** Store key of an object: `<namespace>/<name>` (`/<name>` when cluster-scoped). */
export function objectKey(object: KubeObject): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

/**
 * The changes that turn `previous` into the freshly listed `items`: an upsert for each
 * object that is new or whose resourceVersion changed, a delete (with the last known
 * object) for each one that is gone. Unchanged objects produce nothing. Pure.
 *
 * @returns the changes (upserts in list order, then deletes) and the new store.
 */
export function relistChanges<T extends KubeObject>(
  previous: ReadonlyMap<string, T>,
  items: readonly T[],
): { changes: InformerChange<T>[]; next: Map<string, T> } {
  const next = new Map<string, T>();
  const changes: InformerChange<T>[] = [];
  for (const object of items) {
    const key = objectKey(object);
    next.set(key, object);
    const before = previous.get(key);
    if (before === undefined || versionOf(before) !== versionOf(object)) {
      changes.push({ type: "upsert", object });
    }
  }
  for (const [key, object] of previous) {
    if (!next.has(key)) changes.push({ type: "delete", object });
  }
  return { changes, next };
}

/** Updates the store with one watch event; undefined when it changes nothing. */
function applyWatchEvent<T extends KubeObject>(
  store: Map<string, T>,
  event: WatchEvent<T>,
): InformerChange<T> | undefined {
  const key = objectKey(event.object);
  const before = store.get(key);
  if (event.type === "DELETED") {
    if (before === undefined) return undefined;
    store.delete(key);
    return { type: "delete", object: event.object };
  }
  if (before !== undefined && versionOf(before) === versionOf(event.object)) return undefined;
  store.set(key, event.object);
  return { type: "upsert", object: event.object };
}

function versionOf(object: KubeObject): string | undefined {
  return object.metadata?.resourceVersion;
}

function describeScope(type: ResourceType, namespace: string | undefined): string {
  if (!type.namespaced) return `${type.kind} objects`;
  return namespace === undefined
    ? `${type.kind} objects in all namespaces`
    : `${type.kind} objects in namespace ${namespace}`;
}
