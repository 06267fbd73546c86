/**
 * A thin, typed Kubernetes REST client on `fetch`: get, list, watch, server-side apply,
 * merge patch, create, replace, delete. It is the only code that talks to the API server;
 * everything it throws is a {@linkcode KubeError}.
 *
 * We do not use kubernetes-fluent-client (DESIGN §7 names it): it costs ~0.5 s of start-up
 * and most of the dependency tree, and hides the server-side apply options, watch
 * bookmarks and 410 handling this adapter needs to control exactly.
 */

import { KubeApiError, KubeGoneError, type KubeStatus, KubeUnavailableError } from "./errors.ts";
import type { KubeConfig } from "./kubeconfig.ts";
import {
  apiVersionOf,
  type KubeList,
  type KubeObject,
  type ResourceType,
  type WatchEvent,
} from "./types.ts";
import { readWatchEvents } from "./watch.ts";
import { errorMessage } from "../../core/errors.ts";

/** Options of {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Time limit of every request except watches. @default 30_000 */
  requestTimeoutMs?: number;
  /** Sent as `User-Agent`. @default "fleet" */
  userAgent?: string;
}

/** Options of {@linkcode KubeClient.list}. */
export interface ListOptions {
  /** Namespace to list; omitted = all namespaces (cluster-scoped kinds ignore it). */
  namespace?: string | undefined;
  /** e.g. `"app=web,tier in (edge)"`. */
  labelSelector?: string | undefined;
  /** e.g. `"metadata.name=web"`. */
  fieldSelector?: string | undefined;
}

/** Options of {@linkcode KubeClient.watch}. */
export interface WatchOptions extends ListOptions {
  /** Start after this version (a list's `resourceVersion` or the last event's). */
  resourceVersion: string;
  /** Aborting ends the iteration quietly. */
  signal: AbortSignal;
  /** Ask the server to close the watch after this long (it picks 30–60 min otherwise). */
  timeoutSeconds?: number | undefined;
}

/** Options of {@linkcode KubeClient.apply} and {@linkcode KubeClient.applyStatus}. */
export interface ApplyOptions {
  /** Owner of the applied fields, e.g. `"fleet-operator"`. */
  fieldManager: string;
  /** Take over fields owned by other managers instead of failing with 409. @default false */
  force?: boolean | undefined;
  /** Validate and compute the result without persisting it. @default false */
  dryRun?: boolean | undefined;
  /**
   * Refuse a field the resource's schema does not declare, naming it (`fieldValidation=Strict`,
   * as kubectl asks), instead of the server's default: drop it with a warning. (Server-side
   * apply of a custom resource refuses one anyway on kube-apiserver 1.34, with a 500 "field not
   * declared in schema"; this makes the request say what it needs.) @default false
   */
  strictFields?: boolean | undefined;
}

/** Options of {@linkcode KubeClient.create} and {@linkcode KubeClient.replace}. */
export interface WriteOptions {
  /** Namespace when the object's `metadata.namespace` is empty. */
  namespace?: string | undefined;
  /** Recorded in `managedFields`. */
  fieldManager?: string | undefined;
  /** Validate without persisting. @default false */
  dryRun?: boolean | undefined;
}

/** Options of {@linkcode KubeClient.mergePatch}. */
export interface MergePatchOptions {
  namespace?: string | undefined;
  /** e.g. `"status"`. */
  subresource?: string | undefined;
  fieldManager?: string | undefined;
}

/** Options of {@linkcode KubeClient.delete}. */
export interface DeleteOptions {
  namespace?: string | undefined;
  /**
   * How dependents go. `Foreground` needs the garbage collector (kube-controller-manager),
   * which the test API server does not run.
   */
  propagationPolicy?: "Foreground" | "Background" | "Orphan" | undefined;
  gracePeriodSeconds?: number | undefined;
}

/** Describes a request for error messages. */
interface Target {
  operation: string;
  type: ResourceType;
  name?: string | undefined;
  namespace?: string | undefined;
}

interface RequestInit {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: URLSearchParams;
  body?: string;
  contentType?: string;
  /** Caller's signal; requests without one get the client's time limit. */
  signal?: AbortSignal;
}

const TOKEN_FILE_REFRESH_MS = 60_000;
const LIST_PAGE_SIZE = 500;
/** How long past its server-side timeout a silent watch is taken for dead. */
const WATCH_IDLE_GRACE_MS = 15_000;

/**
 * A client for one API server. Needs `--allow-net` to the server (and `--allow-read` for
 * a token file). Close it (or `using`) when done.
 *
 * Namespaces: `get`, `create`, `replace`, `apply`, `mergePatch` and `delete` of a
 * namespaced kind use the object's or the given namespace, else the config's, else
 * `default` (like kubectl); `list` and `watch` without a namespace cover all namespaces.
 *
 * @example
 * ```ts
 * using client = new KubeClient(await loadKubeConfig());
 * const cm = await client.get(ConfigMapType, "settings", "default");
 * ```
 */
export class KubeClient implements Disposable {
  /** The API server URL, without a trailing slash. */
  readonly server: string;
  /** Namespace used when a namespaced request names none. */
  readonly defaultNamespace: string;
  readonly #http: Deno.HttpClient;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #tokenFile: string | undefined;
  #token: string | undefined;
  #tokenReadAt = 0;
  #closed = false;

  /** @param config where and how to connect, e.g. from {@linkcode loadKubeConfig}. */
  constructor(config: KubeConfig, options: KubeClientOptions = {}) {
    this.server = config.server.replace(/\/+$/, "");
    this.defaultNamespace = config.namespace ?? "default";
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#userAgent = options.userAgent ?? "fleet";
    this.#token = config.token;
    this.#tokenFile = config.tokenFile;
    this.#tokenReadAt = Date.now();
    const tls: Deno.CreateHttpClientOptions = {};
    if (config.caCertPem !== undefined) tls.caCerts = [config.caCertPem];
    this.#http = config.clientCertPem !== undefined && config.clientKeyPem !== undefined
      ? Deno.createHttpClient({
        ...tls,
        cert: config.clientCertPem,
        key: config.clientKeyPem,
      })
      : Deno.createHttpClient(tls);
  }

  /** Closes the connections; pending watches end with an error. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#http.close();
  }

  /** Same as {@linkcode KubeClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Checks that the server is ready (`GET /readyz`) and accepts the credentials.
   * @throws {KubeUnavailableError} when unreachable or not ready (with the failed checks).
   * @throws {KubeApiError} 401 when the token is rejected.
   */
  async health(): Promise<void> {
    const response = await this.#request("check readiness", { path: "/readyz" });
    const text = await response.text();
    if (response.status === 200) return;
    if (response.status === 401 || response.status === 403) {
      throw this.#errorFromBody(
        { operation: "health check", type: API_SERVER },
        response.status,
        text,
      );
    }
    const failed = text.split("\n").filter((l) => l.startsWith("[-]")).join(", ");
    throw new KubeUnavailableError({
      server: this.server,
      operation: "check readiness",
      reason: `not ready (HTTP ${response.status}${failed ? `: ${failed}` : ""})`,
    });
  }

  /**
   * One object.
   * @returns undefined when it does not exist (404 naming the object).
   * @throws {KubeApiError} on any other refusal, including a 404 for an unknown type (a
   *   CRD that is not installed); {@linkcode KubeUnavailableError}.
   */
  async get<T = KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    const target = { operation: "get", type, name, namespace: this.#ns(type, namespace) };
    const response = await this.#request(target.operation, {
      path: resourcePath(type, target.namespace, name),
    });
    if (await this.#objectMissing(target, response)) return undefined;
    return await this.#json<T>(target, response, [200]);
  }

  /**
   * Every object matching, following `continue` pages. Items get `apiVersion` and `kind`
   * filled in (the server leaves them out of list items).
   * @returns the items and the list's `resourceVersion` to start a watch from.
   */
  async list<T = KubeObject>(type: ResourceType, options: ListOptions = {}): Promise<KubeList<T>> {
    const namespace = type.namespaced ? options.namespace : undefined;
    const target = { operation: "list", type, namespace };
    const items: T[] = [];
    let next = "";
    while (true) {
      const query = selectorQuery(options);
      query.set("limit", String(LIST_PAGE_SIZE));
      if (next !== "") query.set("continue", next);
      const response = await this.#request("list", {
        path: resourcePath(type, namespace),
        query,
      });
      const page = await this.#json<RawList>(target, response, [200]);
      const apiVersion = apiVersionOf(type);
      for (const item of page.items ?? []) {
        items.push({ apiVersion, kind: type.kind, ...item } as T);
      }
      next = page.metadata?.continue ?? "";
      if (next === "") return { items, resourceVersion: page.metadata?.resourceVersion ?? "" };
    }
  }

  /**
   * Follows changes after `options.resourceVersion`, with bookmarks on. The iteration
   * ends when the server closes the stream or `options.signal` aborts.
   *
   * @throws {KubeGoneError} when the version is too old (410): relist.
   * @throws {KubeUnavailableError} when the connection cannot be made or breaks.
   */
  async *watch<T = KubeObject>(
    type: ResourceType,
    options: WatchOptions,
  ): AsyncGenerator<WatchEvent<T>, void, undefined> {
    yield* await this.openWatch<T>(type, options);
  }

  /**
   * Like {@linkcode KubeClient.watch}, but resolves only once the server has accepted
   * the watch, so a caller knows the connection is back before the first event.
   */
  async openWatch<T = KubeObject>(
    type: ResourceType,
    options: WatchOptions,
  ): Promise<AsyncIterable<WatchEvent<T>>> {
    const namespace = type.namespaced ? options.namespace : undefined;
    const target = { operation: "watch", type, namespace };
    const query = selectorQuery(options);
    query.set("watch", "1");
    query.set("allowWatchBookmarks", "true");
    query.set("resourceVersion", options.resourceVersion);
    if (options.timeoutSeconds !== undefined) {
      query.set("timeoutSeconds", String(options.timeoutSeconds));
    }
    let response: Response;
    try {
      response = await this.#request("watch", {
        path: resourcePath(type, namespace),
        query,
        signal: options.signal,
      });
    } catch (err) {
      if (options.signal.aborted) return emptyWatch<T>();
      throw err;
    }
    if (response.status !== 200 || response.body === null) {
      await this.#json(target, response, [200]);
      return emptyWatch<T>();
    }
    return readWatchEvents<T>(response.body, {
      signal: options.signal,
      errorFor: (status) => this.#errorFromStatus(target, status.code ?? 500, status),
      lost: (reason, cause) =>
        new KubeUnavailableError({ server: this.server, reason, operation: "watch" }, { cause }),
      ...(options.timeoutSeconds !== undefined
        ? { idleTimeoutMs: options.timeoutSeconds * 1000 + WATCH_IDLE_GRACE_MS }
        : {}),
    });
  }

  /**
   * Server-side apply (`PATCH` with `application/apply-patch+yaml`): the fields in
   * `object` become owned by `options.fieldManager`; fields it owned before and left out
   * are removed. Applying the same object again is a no-op (same `resourceVersion`).
   * `apiVersion` and `kind` are filled in from `type` when missing; `managedFields` is
   * stripped.
   *
   * @throws {KubeApiError} 409 when another manager owns a field (unless `force`), 422
   *   when invalid (the server's message, e.g. a CEL rule's, is in the error message).
   */
  async apply<T extends object>(type: ResourceType, object: T, options: ApplyOptions): Promise<T> {
    return await this.#apply(type, object, options, undefined);
  }

  /** {@linkcode KubeClient.apply} on the `status` subresource; `spec` is not touched. */
  async applyStatus<T extends object>(
    type: ResourceType,
    object: T,
    options: ApplyOptions,
  ): Promise<T> {
    return await this.#apply(type, object, options, "status");
  }

  /**
   * JSON merge patch (RFC 7386). Put `metadata.resourceVersion` in the patch to make it a
   * compare-and-set: a stale version fails with 409 ({@linkcode KubeApiError.isConflict}).
   */
  async mergePatch<T = KubeObject>(
    type: ResourceType,
    name: string,
    patch: object,
    options: MergePatchOptions = {},
  ): Promise<T> {
    const namespace = this.#ns(type, options.namespace);
    const target = { operation: "patch", type, name, namespace };
    const query = new URLSearchParams();
    if (options.fieldManager !== undefined) query.set("fieldManager", options.fieldManager);
    const response = await this.#request("patch", {
      method: "PATCH",
      path: resourcePath(type, namespace, name, options.subresource),
      query,
      body: JSON.stringify(patch),
      contentType: "application/merge-patch+json",
    });
    return await this.#json<T>(target, response, [200, 201]);
  }

  /**
   * Creates an object (`POST`); `metadata.generateName` works.
   * @throws {KubeApiError} 409 `AlreadyExists` when the name is taken.
   */
  async create<T extends object>(
    type: ResourceType,
    object: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const meta = metaOf(object);
    const namespace = this.#ns(type, meta?.namespace ?? options.namespace);
    const target = { operation: "create", type, name: meta?.name, namespace };
    const response = await this.#request("create", {
      method: "POST",
      path: resourcePath(type, namespace),
      query: writeQuery(options),
      body: JSON.stringify(withTypeMeta(type, object)),
      contentType: "application/json",
    });
    return await this.#json<T>(target, response, [200, 201, 202]);
  }

  /**
   * Replaces an object (`PUT`). With `metadata.resourceVersion` set, a stale version fails
   * with 409; without it the write is unconditional.
   */
  async replace<T extends object>(
    type: ResourceType,
    object: T,
    options: WriteOptions & { subresource?: string | undefined } = {},
  ): Promise<T> {
    const meta = metaOf(object);
    const name = requireName(type, meta, "replace");
    const namespace = this.#ns(type, meta?.namespace ?? options.namespace);
    const target = { operation: "replace", type, name, namespace };
    const response = await this.#request("replace", {
      method: "PUT",
      path: resourcePath(type, namespace, name, options.subresource),
      query: writeQuery(options),
      body: JSON.stringify(withTypeMeta(type, object)),
      contentType: "application/json",
    });
    return await this.#json<T>(target, response, [200, 201]);
  }

  /**
   * Deletes an object (it may linger while finalizers run).
   * @returns false when it did not exist (404 naming the object; a 404 for an unknown type
   *   is thrown, as in {@linkcode KubeClient.get}).
   */
  async delete(type: ResourceType, name: string, options: DeleteOptions = {}): Promise<boolean> {
    const namespace = this.#ns(type, options.namespace);
    const target = { operation: "delete", type, name, namespace };
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions" };
    if (options.propagationPolicy !== undefined) {
      body["propagationPolicy"] = options.propagationPolicy;
    }
    if (options.gracePeriodSeconds !== undefined) {
      body["gracePeriodSeconds"] = options.gracePeriodSeconds;
    }
    const response = await this.#request("delete", {
      method: "DELETE",
      path: resourcePath(type, namespace, name),
      body: JSON.stringify(body),
      contentType: "application/json",
    });
    if (await this.#objectMissing(target, response)) return false;
    await this.#json(target, response, [200, 202]);
    return true;
  }

  /**
   * True (body consumed) when a 404 says the object does not exist. A 404 for the type
   * itself (a CRD that is not installed, a wrong group or version) is not that: it is
   * thrown as a {@linkcode KubeApiError}, so a missing CRD never reads as a missing object.
   */
  async #objectMissing(target: Target, response: Response): Promise<boolean> {
    if (response.status !== 404) return false;
    const text = await response.text();
    const error = this.#errorFromBody(target, 404, text);
    if (error.statusObject?.details?.name === target.name) return true;
    throw error;
  }

  async #apply<T extends object>(
    type: ResourceType,
    object: T,
    options: ApplyOptions,
    subresource: string | undefined,
  ): Promise<T> {
    const meta = metaOf(object);
    const operation = subresource === undefined ? "apply" : `apply ${subresource}`;
    const name = requireName(type, meta, operation);
    const namespace = this.#ns(type, meta?.namespace);
    const target = { operation, type, name, namespace };
    const query = new URLSearchParams({ fieldManager: options.fieldManager });
    if (options.force) query.set("force", "true");
    if (options.dryRun) query.set("dryRun", "All");
    if (options.strictFields) query.set("fieldValidation", "Strict");
    const body = withTypeMeta(type, object) as KubeObject;
    if (body.metadata?.managedFields !== undefined) {
      const { managedFields: _, ...rest } = body.metadata;
      body.metadata = rest;
    }
    const response = await this.#request(operation, {
      method: "PATCH",
      path: resourcePath(type, namespace, name, subresource),
      query,
      body: JSON.stringify(body),
      contentType: "application/apply-patch+yaml",
    });
    return await this.#json<T>(target, response, [200, 201]);
  }

  #ns(type: ResourceType, namespace: string | undefined): string | undefined {
    if (!type.namespaced) return undefined;
    return namespace === undefined || namespace === "" ? this.defaultNamespace : namespace;
  }

  async #request(operation: string, init: RequestInit): Promise<Response> {
    const query = init.query?.toString() ?? "";
    const url = `${this.server}${init.path}${query === "" ? "" : `?${query}`}`;
    const headers = new Headers({ "Accept": "application/json", "User-Agent": this.#userAgent });
    const token = await this.#currentToken();
    if (token !== undefined && token !== "") headers.set("Authorization", `Bearer ${token}`);
    if (init.contentType !== undefined) headers.set("Content-Type", init.contentType);
    const timeout = init.signal === undefined ? AbortSignal.timeout(this.#timeoutMs) : undefined;
    try {
      return await fetch(url, {
        method: init.method ?? "GET",
        headers,
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: init.signal ?? timeout ?? null,
        client: this.#http,
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const reason = timeout?.aborted
        ? `no answer within ${this.#timeoutMs / 1000} s`
        : describeFetchError(err);
      throw new KubeUnavailableError({ server: this.server, reason, operation }, { cause: err });
    }
  }

  async #currentToken(): Promise<string | undefined> {
    if (this.#tokenFile !== undefined && Date.now() - this.#tokenReadAt > TOKEN_FILE_REFRESH_MS) {
      this.#tokenReadAt = Date.now();
      try {
        const fresh = (await Deno.readTextFile(this.#tokenFile)).trim();
        if (fresh !== "") this.#token = fresh;
      } catch {
        // Keep the token we have; the server will say 401 if it is no longer good.
      }
    }
    return this.#token;
  }

  /** Parses a success body, or throws the error the server described. */
  async #json<T>(target: Target, response: Response, ok: number[]): Promise<T> {
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw new KubeUnavailableError({
        server: this.server,
        operation: target.operation,
        reason: `the answer broke off (${describeFetchError(err)})`,
      }, { cause: err });
    }
    if (!ok.includes(response.status)) throw this.#errorFromBody(target, response.status, text);
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new KubeUnavailableError({
        server: this.server,
        operation: target.operation,
        reason: `the answer is not JSON: ${text.slice(0, 200)}`,
      }, { cause: err });
    }
  }

  #errorFromBody(target: Target, httpStatus: number, text: string): KubeApiError {
    let status: KubeStatus | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (isStatus(parsed)) status = parsed;
    } catch {
      // Not JSON (a proxy's page, a plain-text 503): the text is the message.
    }
    if (status !== undefined && !(httpStatus === 404 && status.details?.name === undefined)) {
      return this.#errorFromStatus(target, httpStatus, status);
    }
    let message = status?.message ?? text.trim().slice(0, 500);
    if (message === "") message = `HTTP ${httpStatus}`;
    if (httpStatus === 404 && target.type !== API_SERVER) {
      // Not an object but the type itself: "404 page not found" alone helps nobody.
      const t = target.type;
      message += ` (the API server does not serve ${t.plural} in ${apiVersionOf(t)}; if it ` +
        "is a custom resource, is its CustomResourceDefinition installed?)";
    }
    return makeApiError(target, {
      status: httpStatus,
      reason: status?.reason ?? "NotFound",
      message,
      ...(status === undefined ? {} : { statusObject: status }),
    });
  }

  #errorFromStatus(target: Target, httpStatus: number, status: KubeStatus): KubeApiError {
    return makeApiError(target, {
      status: status.code ?? httpStatus,
      reason: status.reason ?? "",
      message: status.message ?? `HTTP ${httpStatus}`,
      statusObject: status,
    });
  }
}

/** Stands in for a resource type in errors about the server itself. */
const API_SERVER: ResourceType = {
  group: "",
  version: "",
  plural: "",
  kind: "API server",
  namespaced: false,
};

interface RawList {
  items?: object[] | null;
  metadata?: { resourceVersion?: string; continue?: string };
}

function makeApiError(
  target: Target,
  init: { status: number; reason: string; message: string; statusObject?: KubeStatus },
): KubeApiError {
  const full = {
    ...init,
    kind: target.type.kind,
    objectName: target.name,
    namespace: target.namespace,
    operation: target.operation,
  };
  return init.status === 410 ? new KubeGoneError(full) : new KubeApiError(full);
}

function isStatus(value: unknown): value is KubeStatus {
  return typeof value === "object" && value !== null && "kind" in value &&
    (value as { kind: unknown }).kind === "Status";
}

/**
 * REST path of a collection, object or subresource.
 * @throws {TypeError} for an empty `name`: the path would be the collection's, and a DELETE
 *   of it deletes every object of the kind.
 */
export function resourcePath(
  type: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  if (name === "") {
    throw new TypeError(
      `A ${type.kind} needs a name: an empty one would address every ${type.kind} ` +
        `${namespace === undefined ? "in the cluster" : `in namespace ${namespace}`}`,
    );
  }
  let path = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  if (type.namespaced && namespace !== undefined) path += `/namespaces/${enc(namespace)}`;
  path += `/${type.plural}`;
  if (name !== undefined) path += `/${enc(name)}`;
  if (subresource !== undefined) path += `/${subresource}`;
  return path;
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function selectorQuery(options: ListOptions): URLSearchParams {
  const query = new URLSearchParams();
  if (options.labelSelector) query.set("labelSelector", options.labelSelector);
  if (options.fieldSelector) query.set("fieldSelector", options.fieldSelector);
  return query;
}

function writeQuery(options: WriteOptions): URLSearchParams {
  const query = new URLSearchParams();
  if (options.fieldManager !== undefined) query.set("fieldManager", options.fieldManager);
  if (options.dryRun) query.set("dryRun", "All");
  return query;
}

function metaOf(object: object): KubeObject["metadata"] {
  return (object as KubeObject).metadata;
}

function requireName(
  type: ResourceType,
  meta: KubeObject["metadata"],
  operation: string,
): string {
  const name = meta?.name;
  if (name === undefined || name === "") {
    throw new TypeError(`Cannot ${operation} a ${type.kind} without metadata.name`);
  }
  return name;
}

function withTypeMeta<T extends object>(type: ResourceType, object: T): T {
  const o = object as KubeObject;
  if (o.apiVersion !== undefined && o.kind !== undefined) return object;
  return { apiVersion: apiVersionOf(type), kind: type.kind, ...object };
}

async function* noEvents<T>(): AsyncGenerator<WatchEvent<T>, void, undefined> {}

function emptyWatch<T>(): AsyncIterable<WatchEvent<T>> {
  return noEvents<T>();
}

/**
 * Deno's fetch errors read `fetch failed` with a cause like `error sending request for url
 * (https://…): client error (Connect): tcp connect error: Connection refused (os error
 * 111)`; keep the part that says what happened (`tcp connect error: Connection refused…`,
 * `invalid peer certificate: UnknownIssuer`, `dns error: …`).
 */
function describeFetchError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 4; e = (e as Error).cause) {
    parts.push(errorMessage(e));
    if (!(e instanceof Error)) break;
  }
  const text = parts.filter((p) => !/^fetch failed$/i.test(p.trim())).join(": ") ||
    parts.join(": ");
  const reason = text
    .replace(/error sending request for url \([^)]*\):\s*/g, "")
    .replace(/client error \(Connect\):\s*/g, "")
    .trim();
  return /invalid peer certificate/i.test(reason)
    ? `${reason} (the server certificate is not signed by the CA this client trusts; check ` +
      "the kubeconfig's certificate-authority)"
    : reason;
}
