/**
 * NATS credentials from an OIDC access token: the client presents the token on every
 * (re)connect and the auth callout turns it into a NATS user. The token is renewed in the
 * background before it expires, and at once when a stale one is noticed, so a reconnect
 * after a long time offline presents a fresh token (at worst on the second attempt).
 */

import type { Auth, Authenticator } from "@nats-io/nats-core";
import { decodeJwt } from "jose";
import { principalInboxPrefix, principalOfClaims } from "../../core/principal.ts";
import type { Clock, Timer } from "../../core/clock.ts";
import { systemClock } from "../clock.ts";
import type { Logger } from "../logger.ts";
import type { CredentialOptions, CredentialSource } from "../nats/credentials.ts";
import { errorMessage } from "../../core/errors.ts";
import type { TokenSource } from "./token_source.ts";

/** Options of {@link oidcCredentials}. */
export interface OidcCredentialsOptions {
  /**
   * Inbox prefix for the connection: `_INBOX_<deviceId>` for a device (DESIGN.md §5), or
   * {@link principalInbox} for anyone else, whose prefix follows from its token.
   */
  inboxPrefix?: string | ((accessToken: string) => string);
  /** Where renewal failures are logged. Without one they are not logged. */
  logger?: Logger;
  /**
   * First wait before retrying a failed renewal; doubles up to `maxRetryDelayMs`.
   * @default 2_000
   */
  retryDelayMs?: number;
  /** @default 60_000 */
  maxRetryDelayMs?: number;
  /**
   * Times the renewals and the retry backoff; it should be the token source's clock, whose
   * `now()` dates the token's refresh time.
   * @default systemClock
   */
  clock?: Clock;
}

/** A {@link CredentialSource} backed by a {@link TokenSource}. */
export interface OidcCredentialSource extends CredentialSource {
  readonly kind: "oidc-token";
  /**
   * Tells the source the connection dropped: a token that is stale (past its refresh time)
   * is renewed now, even while a failed renewal waits for its retry, so it is fresh for the
   * reconnect. Never throws.
   */
  onDisconnect(): void;
  /** Stops the background renewal. */
  stop(): void;
}

/**
 * NATS credentials that present `source`'s access token as `auth_token`.
 *
 * `connectionOptions()` waits for a fresh token and starts the background renewal (a timer
 * set to the token's refresh time, retried with backoff when the provider is unreachable).
 * The returned `authenticator` is synchronous as nats.js requires: it hands out
 * `source.current()` and, when that token is past its refresh time (a laptop or device
 * waking up after the timer should have fired), starts a renewal at once and still returns
 * the stale token for this attempt; the next attempt, about a second later, has the fresh one.
 */
export function oidcCredentials(
  source: TokenSource,
  options: OidcCredentialsOptions = {},
): OidcCredentialSource {
  return new OidcCredentials(source, options);
}

/**
 * The inbox prefix of the bearer of `accessToken` (a person, the operator): `_INBOX_p_` and the
 * principal the auth callout derives from the same token's `iss` and `sub` (DESIGN.md §9), the
 * only inbox its user may subscribe to. The token is its own, so it is read, not verified.
 *
 * @throws {Error} when the token is not a JWT naming an issuer and a subject.
 */
export function principalInbox(accessToken: string): string {
  const principal = principalOfClaims(decodeJwt(accessToken));
  if (principal === undefined) {
    throw new Error(`the access token names no issuer ("iss") and subject ("sub")`);
  }
  return principalInboxPrefix(principal);
}

/** Least time between two scheduled renewals, against a provider issuing stale tokens. */
const MIN_RENEW_INTERVAL_MS = 1_000;

class OidcCredentials implements OidcCredentialSource {
  readonly kind = "oidc-token";
  readonly bearer = true;
  readonly #source: TokenSource;
  readonly #inboxPrefix: OidcCredentialsOptions["inboxPrefix"];
  readonly #logger: Logger | undefined;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #clock: Clock;
  #timer: Timer | undefined;
  #renewing: Promise<void> | undefined;
  #failures = 0;
  #stopped = false;

  constructor(source: TokenSource, options: OidcCredentialsOptions) {
    this.#source = source;
    this.#inboxPrefix = options.inboxPrefix;
    this.#logger = options.logger?.with({ component: "oidc-credentials" });
    this.#retryDelayMs = options.retryDelayMs ?? 2_000;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.#clock = options.clock ?? systemClock;
  }

  describe(): string {
    return `OIDC token for client "${this.#source.clientId}" from ${this.#source.issuer}`;
  }

  async connectionOptions(): Promise<CredentialOptions> {
    this.#stopped = false;
    const token = await this.#source.token();
    this.#failures = 0;
    this.#schedule();
    const inboxPrefix = typeof this.#inboxPrefix === "function"
      ? this.#inboxPrefix(token)
      : this.#inboxPrefix;
    const authenticator: Authenticator = (): Auth => {
      // After a failed renewal the backoff timer retries; connect attempts do not add more.
      if (this.#isStale() && this.#failures === 0) this.#renewNow();
      return { auth_token: this.#source.current() ?? "" };
    };
    return {
      authenticator,
      ...(inboxPrefix !== undefined ? { inboxPrefix } : {}),
    };
  }

  onDisconnect(): void {
    if (this.#isStale()) this.#renewNow();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #isStale(): boolean {
    const refreshAt = this.#source.refreshAt;
    return refreshAt === undefined || this.#clock.now() >= refreshAt;
  }

  /** Renews now unless a renewal is already running; reschedules after it. */
  #renewNow(): void {
    if (this.#renewing !== undefined || this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#renewing = this.#source.refresh()
      .then(() => {
        this.#failures = 0;
      }, (err: unknown) => {
        this.#failures++;
        this.#logger?.warn(
          `Cannot renew the NATS access token (${this.describe()}); will retry`,
          { attempt: this.#failures, error: errorMessage(err) },
        );
      })
      .finally(() => {
        this.#renewing = undefined;
        this.#schedule();
      });
  }

  /** Sets the timer for the next renewal: the token's refresh time, or a retry backoff. */
  #schedule(): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    let delay: number;
    if (this.#failures > 0) {
      delay = Math.min(this.#retryDelayMs * 2 ** (this.#failures - 1), this.#maxRetryDelayMs);
    } else {
      const refreshAt = this.#source.refreshAt;
      delay = refreshAt === undefined
        ? this.#retryDelayMs
        : Math.max(MIN_RENEW_INTERVAL_MS, refreshAt - this.#clock.now());
    }
    // setTimeout's limit is ~24.8 days; a later refresh just wakes up once more first.
    // Unref'd: a command that closes its connection does not call stop(), and a pending
    // renewal must not keep its process alive.
    this.#timer = this.#clock.timer(Math.min(delay, 2 ** 31 - 1), () => {
      this.#timer = undefined;
      if (this.#isStale() || this.#failures > 0) this.#renewNow();
      else this.#schedule();
    }, { unref: true });
  }
}
