/** OpenID Provider discovery and JSON fetching shared by the verifier and the token source. */
import { errorMessage } from "../../core/errors.ts";

/** Fetching from the provider failed: unreachable, timed out, not JSON, or an HTTP error. */
export class OidcFetchError extends Error {
  override name = "OidcFetchError";
  /** The URL that was fetched. */
  readonly url: string;
  /** The HTTP status, when the provider answered. */
  readonly status: number | undefined;
  constructor(message: string, url: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.url = url;
    this.status = status;
  }
}

/** The fields of a discovery document this project reads; others are kept as unknown. */
export interface DiscoveryDocument {
  issuer?: unknown;
  jwks_uri?: unknown;
  token_endpoint?: unknown;
  [field: string]: unknown;
}

/** `https://idp/realm/` → `https://idp/realm/.well-known/openid-configuration`. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

/**
 * Reads the provider's discovery document and checks that it is the configured issuer's.
 * @throws {OidcFetchError}
 */
export async function discover(issuer: string, timeoutMs: number): Promise<DiscoveryDocument> {
  const url = discoveryUrl(issuer);
  const document = await fetchJsonObject(url, timeoutMs);
  if (document.issuer !== issuer) {
    throw new OidcFetchError(
      `the discovery document at ${url} names issuer ${JSON.stringify(document.issuer)}, ` +
        `not the configured "${issuer}" (check the issuer URL, including a trailing slash)`,
      url,
    );
  }
  return document;
}

/**
 * GETs a JSON object.
 * @throws {OidcFetchError}
 */
export async function fetchJsonObject(
  url: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const why = err instanceof DOMException && err.name === "TimeoutError"
      ? `no answer within ${timeoutMs} ms`
      : errorMessage(err);
    throw new OidcFetchError(`cannot reach ${url}: ${why}`, url, undefined, { cause: err });
  }
  const text = await response.text().catch(() => "");
  if (!response.ok) {
    throw new OidcFetchError(
      `${url} answered HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
      url,
      response.status,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OidcFetchError(`${url} did not answer JSON`, url, response.status, { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OidcFetchError(`${url} did not answer a JSON object`, url, response.status);
  }
  return value as Record<string, unknown>;
}
