/**
 * Typed errors of the Kubernetes adapter. Whatever `fetch`, TLS or the API server throws
 * is wrapped into one of these at the adapter edge, so callers never see a raw `TypeError`
 * or a `Status` body. All of them extend {@linkcode KubeError}.
 */

/** Base class of every error the Kubernetes adapter throws. */
export class KubeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeError";
  }
}

/**
 * The `Status` object the API server sends with a failed request (and inside a watch
 * `ERROR` event). Only the fields we read are typed.
 */
export interface KubeStatus {
  kind?: "Status";
  apiVersion?: string;
  status?: "Success" | "Failure";
  /** Human-readable description, e.g. a CEL rule's message. Passed on verbatim. */
  message?: string;
  /** Machine-readable reason: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`... */
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
  code?: number;
}

/** What {@linkcode KubeApiError} is constructed from. */
export interface KubeApiErrorInit {
  /** HTTP status (or the `code` of a watch `ERROR` event). */
  status: number;
  /** The Status `reason`, e.g. `"Conflict"`; `""` when the server sent none. */
  reason: string;
  /** The server's message, verbatim (CEL and schema validation messages included). */
  message: string;
  /** Kind of the object or list the request was about, e.g. `"Deployment"`. */
  kind: string;
  /** Name of the object, when the request was about one. */
  objectName?: string | undefined;
  /** Namespace of the request, when namespaced. */
  namespace?: string | undefined;
  /** What was attempted: `"get"`, `"list"`, `"watch"`, `"apply"`, `"create"`... */
  operation: string;
  /** The whole Status object, when the server sent one. */
  statusObject?: KubeStatus | undefined;
}

/**
 * The API server answered with an error status. The message is one line naming the
 * object and quoting the server: `Kubernetes rejected Deployment default/web: <message>`.
 *
 * The object's name is {@linkcode KubeApiError.objectName} (`name` is the error class
 * name, as on every `Error`).
 */
export class KubeApiError extends KubeError {
  /** HTTP status, e.g. 409. */
  readonly status: number;
  /** Status reason, e.g. `"Conflict"`, `"NotFound"`, `"Invalid"`, `"Forbidden"`, `"Expired"`. */
  readonly reason: string;
  /** Kind the request was about, e.g. `"ConfigMap"`. */
  readonly kind: string;
  /** Name of the object, when the request was about one. */
  readonly objectName: string | undefined;
  /** Namespace of the request, when namespaced. */
  readonly namespace: string | undefined;
  /** What was attempted: `"get"`, `"list"`, `"watch"`, `"apply"`, `"create"`... */
  readonly operation: string;
  /** The server's own message, verbatim. */
  readonly serverMessage: string;
  /** The Status object the server sent, if any (field causes are in `details.causes`). */
  readonly statusObject: KubeStatus | undefined;

  constructor(init: KubeApiErrorInit, options?: ErrorOptions) {
    super(`Kubernetes rejected ${describeTarget(init)}: ${oneLine(init.message)}`, options);
    this.name = "KubeApiError";
    this.status = init.status;
    this.reason = init.reason;
    this.kind = init.kind;
    this.objectName = init.objectName;
    this.namespace = init.namespace;
    this.operation = init.operation;
    this.serverMessage = init.message;
    this.statusObject = init.statusObject;
  }

  /** 404: the object (or its type) does not exist. */
  isNotFound(): boolean {
    return this.status === 404;
  }

  /** 409: a stale `resourceVersion`, an `AlreadyExists`, or a server-side apply conflict. */
  isConflict(): boolean {
    return this.status === 409;
  }

  /** 410: the requested `resourceVersion` has been compacted away; relist. */
  isGone(): boolean {
    return this.status === 410;
  }

  /** 403: RBAC denied the request. */
  isForbidden(): boolean {
    return this.status === 403;
  }

  /** 401: the credentials were not accepted. */
  isUnauthorized(): boolean {
    return this.status === 401;
  }

  /** 422: the object failed validation (schema, CEL rule, immutable field...). */
  isInvalid(): boolean {
    return this.status === 422;
  }
}

/**
 * A watch ended with 410 Gone (reason `Expired`): its `resourceVersion` is older than the
 * server keeps. The only way forward is a new list.
 */
export class KubeGoneError extends KubeApiError {
  constructor(init: KubeApiErrorInit, options?: ErrorOptions) {
    super(init, options);
    this.name = "KubeGoneError";
  }
}

/**
 * The API server could not be reached or did not answer: connection refused, TLS failure,
 * a dropped connection, a timeout, or a server that is not ready.
 */
export class KubeUnavailableError extends KubeError {
  /** The API server URL. */
  readonly server: string;
  /** The low-level reason, e.g. `"Connection refused (os error 111)"`. */
  readonly reason: string;

  constructor(
    init: { server: string; reason: string; operation?: string },
    options?: ErrorOptions,
  ) {
    const what = init.operation === undefined ? "" : ` (while trying to ${init.operation})`;
    super(
      `Cannot reach the Kubernetes API server ${init.server}${what}: ${oneLine(init.reason)}`,
      options,
    );
    this.name = "KubeUnavailableError";
    this.server = init.server;
    this.reason = init.reason;
  }
}

/** A kubeconfig (or the in-cluster service account files) could not be used. */
export class KubeConfigError extends KubeError {
  /** The file (or in-cluster folder) the problem is in. */
  readonly source: string;

  constructor(source: string, problem: string, options?: ErrorOptions) {
    super(`Cannot use the Kubernetes configuration ${source}: ${problem}`, options);
    this.name = "KubeConfigError";
    this.source = source;
  }
}

function describeTarget(init: KubeApiErrorInit): string {
  if (init.objectName !== undefined) {
    const ref = init.namespace === undefined
      ? init.objectName
      : `${init.namespace}/${init.objectName}`;
    return `${init.kind} ${ref}`;
  }
  const scope = init.namespace === undefined ? "" : ` in namespace ${init.namespace}`;
  return `${init.operation} of ${init.kind}${scope}`;
}

/** Collapses multi-line server messages into one line; single-line text is kept verbatim. */
export function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, "; ");
}
