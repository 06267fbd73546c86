/**
 * The OAuth 2.0 device authorization grant (RFC 8628), for an admin signing in from a
 * terminal: the provider hands out a short user code, the admin enters it on a web page
 * (on any browser), and this side polls the token endpoint until the sign-in is approved,
 * denied, or the code expires.
 *
 * ```ts
 * const { accessToken } = await deviceFlowLogin({
 *   issuer: "https://id.example.com",
 *   clientId: "fleet-cli",
 *   scope: "openid",
 *   prompt: ({ verificationUriComplete, verificationUri, userCode }) =>
 *     logger.info(`Open ${verificationUriComplete ?? verificationUri} and enter ${userCode}`),
 * });
 * ```
 *
 * @module
 */

import { decodeJwt } from "jose";
import * as z from "zod";
import { type Logger, silentLogger } from "../logger.ts";
import { sleep as abortableSleep } from "../timers.ts";
import { discover, OidcFetchError } from "./_discovery.ts";
import { errorMessage } from "../../core/errors.ts";

/** `grant_type` of the device access token request (RFC 8628 §3.4). */
export const DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";

/** RFC 8628 §3.2: the polling interval when the provider names none. */
const DEFAULT_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: what `slow_down` adds to the interval. */
const SLOW_DOWN_STEP_MS = 5_000;

/** What the admin needs to sign in; the CLI prints it. */
export interface DeviceFlowPrompt {
  /** The code to enter on the verification page, e.g. `WDJB-MJHT`. */
  userCode: string;
  /** The page where the code is entered. */
  verificationUri: string;
  /** The page with the code already filled in (a link or QR code), when the provider offers one. */
  verificationUriComplete: string | undefined;
  /** When the code stops working (epoch ms, local clock). */
  expiresAt: number;
}

/** Options of {@link deviceFlowLogin}. */
export interface DeviceFlowOptions {
  /** The provider's issuer URL; discovery is read from it. */
  issuer: string;
  /** The public client registered for the CLI (no secret). */
  clientId: string;
  /** Space-separated scopes sent with the device authorization request. */
  scope?: string;
  /** Resource indicator (RFC 8707) sent as `resource`, e.g. `nats://fleet`. */
  audience?: string;
  /**
   * Shows the admin where to sign in. Polling starts once it returns; a rejection ends the
   * flow with that error.
   */
  prompt: (prompt: DeviceFlowPrompt) => void | Promise<void>;
  /** Ends the flow early (Ctrl-C) with a {@link DeviceFlowError} of code `aborted`. */
  signal?: AbortSignal;
  /**
   * Time limit of each request to the provider.
   * @default 10_000
   */
  fetchTimeoutMs?: number;
  /** @default silentLogger */
  logger?: Logger;
  /** Clock (epoch ms), for tests. @default Date.now */
  now?: () => number;
  /**
   * Waits between polls; must resolve early when `signal` aborts. For tests.
   * @default the abortable sleep of adapters/timers.ts
   */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The token the admin's sign-in produced. */
export interface DeviceFlowToken {
  accessToken: string;
  /** `Bearer`, or `DPoP` for sender-constrained tokens. */
  tokenType: string;
  /** When the access token expires (epoch ms), when the provider said or the token shows. */
  expiresAt: number | undefined;
  /** The granted scopes, when the provider listed them. */
  scope: string | undefined;
  refreshToken: string | undefined;
  idToken: string | undefined;
}

/** Why a device sign-in ended without a token. */
export const DeviceFlowErrorCodes = {
  /** The admin refused (aborted the code or declined consent): `access_denied`. */
  denied: "denied",
  /** The user code expired before the sign-in completed: `expired_token` or the local deadline. */
  expired: "expired",
  /** The caller's signal aborted the flow. */
  aborted: "aborted",
  /** The provider offers no device authorization endpoint. */
  unsupported: "unsupported",
  /** The provider answered with another OAuth error (`invalid_client`, `invalid_scope`, ...). */
  refused: "refused",
  /** The provider could not be reached or answered something that is not OAuth. */
  unreachable: "unreachable",
} as const;
/** A value of {@link DeviceFlowErrorCodes}. */
export type DeviceFlowErrorCode = typeof DeviceFlowErrorCodes[keyof typeof DeviceFlowErrorCodes];

/** A device sign-in ended without a token; the message says what happened and what to do. */
export class DeviceFlowError extends Error {
  override name = "DeviceFlowError";
  /** Why, as a {@link DeviceFlowErrorCodes} value. */
  readonly code: DeviceFlowErrorCode;
  /** The provider's issuer URL. */
  readonly issuer: string;
  /** The provider's OAuth `error`, when it answered one. */
  readonly error: string | undefined;
  /** The provider's `error_description`, when it gave one. */
  readonly errorDescription: string | undefined;
  /** HTTP status of the provider's answer, when there was one. */
  readonly status: number | undefined;
  constructor(
    code: DeviceFlowErrorCode,
    message: string,
    fields: {
      issuer: string;
      error?: string | undefined;
      errorDescription?: string | undefined;
      status?: number | undefined;
    },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.issuer = fields.issuer;
    this.error = fields.error;
    this.errorDescription = fields.errorDescription;
    this.status = fields.status;
  }
}

const DeviceAuthorizationResponse = z.object({
  device_code: z.string().min(1),
  user_code: z.string().min(1),
  // Some providers (Google) spell it verification_url.
  verification_uri: z.string().min(1).optional(),
  verification_url: z.string().min(1).optional(),
  verification_uri_complete: z.string().min(1).optional(),
  expires_in: z.number().positive(),
  interval: z.number().positive().optional(),
});
type DeviceAuthorizationResponse = z.infer<typeof DeviceAuthorizationResponse>;

const TokenResponse = z.object({
  access_token: z.string().min(1),
  token_type: z.string().min(1),
  expires_in: z.number().positive().optional(),
  scope: z.string().optional(),
  refresh_token: z.string().optional(),
  id_token: z.string().optional(),
});

const OAuthErrorResponse = z.object({
  error: z.string().min(1),
  error_description: z.string().optional(),
});
type OAuthErrorResponse = z.infer<typeof OAuthErrorResponse>;

/**
 * Signs an admin in with the device authorization grant: requests a user code, hands it to
 * `options.prompt`, and polls the token endpoint at the provider's interval (slower after
 * `slow_down`) until the sign-in is approved.
 *
 * @returns the access token and when it expires
 * @throws {DeviceFlowError} when the admin denies, the code expires, the signal aborts, or the
 *   provider cannot be used; the message is meant for the admin.
 */
export async function deviceFlowLogin(options: DeviceFlowOptions): Promise<DeviceFlowToken> {
  return await new DeviceFlow(options).run();
}

class DeviceFlow {
  readonly #options: DeviceFlowOptions;
  readonly #issuer: string;
  readonly #signal: AbortSignal;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(options: DeviceFlowOptions) {
    this.#options = options;
    this.#issuer = options.issuer;
    this.#signal = options.signal ?? new AbortController().signal;
    this.#timeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.#logger = (options.logger ?? silentLogger).with({ component: "oidc-device-flow" });
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? abortableSleep;
  }

  async run(): Promise<DeviceFlowToken> {
    this.#throwIfAborted();
    const { deviceEndpoint, tokenEndpoint } = await this.#endpoints();
    const authorization = await this.#authorize(deviceEndpoint);
    const deadline = this.#now() + authorization.expires_in * 1000;
    const verificationUri = authorization.verification_uri ?? authorization.verification_url;
    if (verificationUri === undefined) {
      throw this.#unreachable(`${deviceEndpoint} answered without a verification_uri`);
    }
    await this.#options.prompt({
      userCode: authorization.user_code,
      verificationUri,
      verificationUriComplete: authorization.verification_uri_complete,
      expiresAt: deadline,
    });
    return await this.#poll(tokenEndpoint, authorization, verificationUri, deadline);
  }

  async #endpoints(): Promise<{ deviceEndpoint: string; tokenEndpoint: string }> {
    let document: Record<string, unknown>;
    try {
      document = await discover(this.#issuer, this.#timeoutMs);
    } catch (err) {
      const what = err instanceof OidcFetchError ? err.message : errorMessage(err);
      throw this.#unreachable(what, undefined, err);
    }
    const deviceEndpoint = document.device_authorization_endpoint;
    const tokenEndpoint = document.token_endpoint;
    if (typeof deviceEndpoint !== "string" || deviceEndpoint === "") {
      throw new DeviceFlowError(
        DeviceFlowErrorCodes.unsupported,
        `${this.#issuer} does not offer the device sign-in (its discovery document has no ` +
          `device_authorization_endpoint): enable the device code grant for client ` +
          `"${this.#options.clientId}", or pass an access token instead`,
        { issuer: this.#issuer },
      );
    }
    if (typeof tokenEndpoint !== "string" || tokenEndpoint === "") {
      throw this.#unreachable(`its discovery document has no token_endpoint`);
    }
    return { deviceEndpoint, tokenEndpoint };
  }

  async #authorize(endpoint: string): Promise<DeviceAuthorizationResponse> {
    const { clientId, scope, audience } = this.#options;
    const body = new URLSearchParams({ client_id: clientId });
    if (scope !== undefined) body.set("scope", scope);
    if (audience !== undefined) body.set("resource", audience);
    const { status, json } = await this.#post(endpoint, body);
    if (status !== 200) throw this.#refusal(endpoint, status, json, "device authorization");
    const parsed = DeviceAuthorizationResponse.safeParse(json);
    if (!parsed.success) {
      throw this.#unreachable(
        `${endpoint} answered an unexpected device authorization response ` +
          `(${z.prettifyError(parsed.error).replaceAll("\n", "; ")})`,
        status,
      );
    }
    return parsed.data;
  }

  async #poll(
    endpoint: string,
    authorization: DeviceAuthorizationResponse,
    verificationUri: string,
    deadline: number,
  ): Promise<DeviceFlowToken> {
    let intervalMs = (authorization.interval ?? DEFAULT_INTERVAL_SECONDS) * 1000;
    const body = new URLSearchParams({
      grant_type: DEVICE_CODE_GRANT_TYPE,
      device_code: authorization.device_code,
      client_id: this.#options.clientId,
    });
    const expired = (error?: OAuthErrorResponse, status?: number) =>
      new DeviceFlowError(
        DeviceFlowErrorCodes.expired,
        `The sign-in code ${authorization.user_code} expired before the sign-in at ` +
          `${verificationUri} was completed: run the command again for a new code`,
        {
          issuer: this.#issuer,
          error: error?.error,
          errorDescription: error?.error_description,
          status,
        },
      );
    while (true) {
      await this.#sleep(intervalMs, this.#signal);
      this.#throwIfAborted();
      if (this.#now() >= deadline) throw expired();
      const sentAt = this.#now();
      let answer: { status: number; json: unknown };
      try {
        answer = await this.#post(endpoint, body);
      } catch (err) {
        // A provider that is briefly unreachable must not end a sign-in in progress.
        if (err instanceof DeviceFlowError && err.code === DeviceFlowErrorCodes.unreachable) {
          this.#logger.debug("Polling the token endpoint failed; retrying", {
            error: err.message,
          });
          continue;
        }
        throw err;
      }
      const { status, json } = answer;
      if (status === 200) return this.#token(endpoint, json, sentAt);
      const error = OAuthErrorResponse.safeParse(json);
      if (!error.success) {
        if (status >= 500) {
          this.#logger.debug("The token endpoint answered an error; retrying", { status });
          continue;
        }
        throw this.#refusal(endpoint, status, json, "token");
      }
      switch (error.data.error) {
        case "authorization_pending":
          continue;
        case "slow_down":
          intervalMs += SLOW_DOWN_STEP_MS;
          this.#logger.debug("The provider asked to poll more slowly", { intervalMs });
          continue;
        case "access_denied":
          throw new DeviceFlowError(
            DeviceFlowErrorCodes.denied,
            `The sign-in with code ${authorization.user_code} was denied at ${this.#issuer}` +
              `${describe(error.data)}: run the command again and approve the request`,
            {
              issuer: this.#issuer,
              error: error.data.error,
              errorDescription: error.data.error_description,
              status,
            },
          );
        case "expired_token":
          throw expired(error.data, status);
        default:
          throw this.#refusal(endpoint, status, json, "token");
      }
    }
  }

  #token(endpoint: string, json: unknown, sentAt: number): DeviceFlowToken {
    const parsed = TokenResponse.safeParse(json);
    if (!parsed.success) {
      throw this.#unreachable(
        `${endpoint} answered an unexpected token response ` +
          `(${z.prettifyError(parsed.error).replaceAll("\n", "; ")})`,
        200,
      );
    }
    const token = parsed.data;
    return {
      accessToken: token.access_token,
      tokenType: token.token_type,
      expiresAt: token.expires_in !== undefined
        ? sentAt + token.expires_in * 1000
        : jwtExpiry(token.access_token),
      scope: token.scope,
      refreshToken: token.refresh_token,
      idToken: token.id_token,
    };
  }

  /** POSTs a form; `json` is the parsed body, or undefined when it is not JSON. */
  async #post(url: string, body: URLSearchParams): Promise<{ status: number; json: unknown }> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body,
        signal: AbortSignal.any([this.#signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
    } catch (err) {
      this.#throwIfAborted();
      const why = err instanceof DOMException && err.name === "TimeoutError"
        ? `no answer within ${this.#timeoutMs} ms`
        : errorMessage(err);
      throw this.#unreachable(`cannot reach ${url}: ${why}`, undefined, err);
    }
    const text = await response.text().catch(() => "");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined; // reported by the caller, which knows what it expected
    }
    return { status: response.status, json };
  }

  #refusal(endpoint: string, status: number, json: unknown, what: string): DeviceFlowError {
    const error = OAuthErrorResponse.safeParse(json);
    if (!error.success) {
      return this.#unreachable(
        `${endpoint} answered HTTP ${status} to the ${what} request`,
        status,
      );
    }
    const hint = error.data.error === "invalid_client" || error.data.error === "unauthorized_client"
      ? `: check that client "${this.#options.clientId}" exists and may use the device code grant`
      : "";
    return new DeviceFlowError(
      DeviceFlowErrorCodes.refused,
      `${this.#issuer} refused the ${what} request: ${error.data.error}` +
        `${describe(error.data)}${hint}`,
      {
        issuer: this.#issuer,
        error: error.data.error,
        errorDescription: error.data.error_description,
        status,
      },
    );
  }

  #unreachable(what: string, status?: number, cause?: unknown): DeviceFlowError {
    return new DeviceFlowError(
      DeviceFlowErrorCodes.unreachable,
      `Cannot sign in at ${this.#issuer}: ${what}`,
      { issuer: this.#issuer, status },
      cause === undefined ? undefined : { cause },
    );
  }

  #throwIfAborted(): void {
    if (!this.#signal.aborted) return;
    throw new DeviceFlowError(
      DeviceFlowErrorCodes.aborted,
      `The sign-in at ${this.#issuer} was cancelled`,
      { issuer: this.#issuer },
      { cause: this.#signal.reason },
    );
  }
}

function describe(error: OAuthErrorResponse): string {
  return error.error_description !== undefined ? ` (${error.error_description})` : "";
}

/** The `exp` of a JWT access token in epoch ms; undefined for an opaque token. */
function jwtExpiry(token: string): number | undefined {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined; // an opaque token
  }
}
