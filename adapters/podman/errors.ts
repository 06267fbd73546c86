/**
 * Typed errors for the Podman adapter. Everything the libpod API or the socket throws is
 * wrapped into one of these at the adapter edge, so callers never see a raw `TypeError`
 * from `fetch` or a libpod JSON error body.
 */

/** What a {@linkcode PodmanError} describes, in the words of the message. */
export interface PodmanErrorInit {
  /** The action that failed, as a verb phrase: `"pull image"`, `"start container"`. */
  operation: string;
  /** The value the action was about (image reference, container name or id). */
  target?: string;
  /** HTTP status from libpod; undefined when no response came back. */
  status?: number;
  /** The libpod socket the request went to. */
  socketPath: string;
  /** The reason, usually libpod's own `message`. */
  detail: string;
}

/**
 * A libpod request that failed: a non-2xx answer, an `error` in a streamed answer, or a
 * transport failure after the socket was reached.
 *
 * The message is one line: `Podman could not pull image "x": <libpod message>`.
 */
export class PodmanError extends Error {
  /** The action that failed, e.g. `"pull image"`. */
  readonly operation: string;
  /** The image reference, container name or id the action was about. */
  readonly target: string | undefined;
  /** HTTP status from libpod, or undefined when no HTTP answer was received. */
  readonly status: number | undefined;
  /** The libpod socket the request went to. */
  readonly socketPath: string;
  /** The reason alone, on one line: libpod's own message, e.g. `manifest unknown`. */
  readonly detail: string;

  constructor(init: PodmanErrorInit, options?: ErrorOptions) {
    super(PodmanError.#format(init), options);
    this.name = "PodmanError";
    this.operation = init.operation;
    this.target = init.target;
    this.status = init.status;
    this.socketPath = init.socketPath;
    this.detail = oneLine(init.detail);
  }

  static #format(init: PodmanErrorInit): string {
    const what = init.target === undefined
      ? init.operation
      : `${init.operation} ${JSON.stringify(init.target)}`;
    return `Podman could not ${what}: ${oneLine(init.detail)}`;
  }

  /** True when libpod answered 404 (no such container or image). */
  isNotFound(): boolean {
    return this.status === 404;
  }
}

/**
 * The libpod socket could not be reached at all (missing socket file, nothing listening,
 * permission denied). Usually the Podman service is not running.
 */
export class PodmanUnavailableError extends PodmanError {
  /** @param reason the OS-level reason, e.g. `"No such file or directory (os error 2)"`. */
  constructor(
    init: { operation: string; target?: string; socketPath: string; reason: string },
    options?: ErrorOptions,
  ) {
    super({
      operation: init.operation,
      ...(init.target === undefined ? {} : { target: init.target }),
      socketPath: init.socketPath,
      detail:
        `the Podman socket ${JSON.stringify(init.socketPath)} is not reachable (${
          oneLine(init.reason)
        }); check \`systemctl --user status podman.socket\` (or \`systemctl status podman.socket\` ` +
        "as root), or start `podman system service`",
    }, options);
    this.name = "PodmanUnavailableError";
  }
}

/** Collapses libpod's multi-line messages (build output, wrapped causes) into one line. */
function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, "; ");
}
