/**
 * The auth callout service (NATS 2.10+): answers the server's authorization requests on
 * `$SYS.REQ.USER.AUTH` by verifying the client's OIDC access token (passed as the NATS
 * `token`), deciding with {@link authorize}, and replying with a user JWT for the Fleet
 * account, or with a refusal.
 */

import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { AuthorizationRequest, ClaimsData, User } from "@nats-io/jwt";
import type { KeyPair } from "@nats-io/nkeys";
import type { Logger } from "../adapters/logger.ts";
import type { Histogram, MetricsRegistry } from "../adapters/metrics.ts";
import { ConnectionState } from "../adapters/nats/mod.ts";
import { systemClock } from "../adapters/clock.ts";
import type { Clock } from "../core/clock.ts";
import { errorMessage } from "../core/errors.ts";
import type { UserLimits } from "../core/limits.ts";
import type { NatsPermissions } from "../core/permissions.ts";
import { authorize, type AuthorizerPolicy, type Decision } from "./authorizer.ts";
import {
  decodeAuthorizationRequest,
  encodeAuthorizationResponseJwt,
  encodeUserJwt,
} from "./keys.ts";

/** The subject the server sends authorization requests to, in the callout's account. */
export const AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH";
/** Header carrying the server's public xkey when the request is encrypted. */
export const SERVER_XKEY_HEADER = "Nats-Server-Xkey";
/** Queue group of the callout's subscription, so several replicas share the requests. */
export const CALLOUT_QUEUE = "fleet-callout";
/** The only refusal a client is told; the reason stays in the callout's log. */
export const REFUSAL_MESSAGE = "authorization failed";

/** A verified access token: its claims and when it expires (epoch ms). */
export interface VerifiedToken {
  claims: Record<string, unknown>;
  expiresAt: number;
}

/**
 * Verifies an OIDC access token (signature against the provider's keys, issuer, audience,
 * expiry). Rejects with an error carrying a `reason` string when the token is not
 * acceptable (e.g. the OIDC adapter's `TokenRejectedError`); any other error means it
 * could not be checked (provider unreachable...). Either way the client is refused.
 */
export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

/** Options of {@link startCalloutService}. */
export interface CalloutServiceOptions {
  /** A connection as the callout user (one of the server's `auth_users`). */
  nc: NatsConnection;
  verifier: TokenVerifier;
  policy: AuthorizerPolicy;
  /** The account users are placed into (the user JWT's `aud`), e.g. `"FLEET"`. */
  account: string;
  /** The account signing key whose public key is the `auth_callout` `issuer`. */
  issuer: KeyPair;
  /** The callout's curve key, when the server encrypts requests (`auth_callout.xkey`). */
  xkey?: KeyPair;
  logger: Logger;
  /** @default "fleet-callout" */
  queue?: string;
  /**
   * Its wall clock judges token expiry and dates the user JWTs' expiry; its monotonic clock
   * times each answer for the log.
   * @default systemClock
   */
  clock?: Clock;
  /** Where to count decisions and time them (fleet_callout_* metrics). */
  metrics?: MetricsRegistry;
}

/** Upper bounds of the authorization latency buckets, in seconds (the target is p99 < 50 ms). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Registers the decision counters (read from `stats`) and returns the latency histogram. */
function registerCalloutMetrics(registry: MetricsRegistry, stats: CalloutStats): Histogram {
  registry.counterFrom(
    "fleet_callout_authorizations_total",
    "Authorization requests answered, by result (dropped: unreadable, not answered).",
    () => [
      { labels: { result: "allowed" }, value: stats.allowed },
      { labels: { result: "refused" }, value: stats.refused },
      { labels: { result: "dropped" }, value: stats.dropped },
    ],
  );
  return registry.histogram(
    "fleet_callout_authorization_duration_seconds",
    "Time from receiving an authorization request to answering it, by result.",
    LATENCY_BUCKETS,
  );
}

/** Counters of what the service decided since it started. */
export interface CalloutStats {
  allowed: number;
  refused: number;
  /** Requests it could not answer at all (unreadable or undecryptable). */
  dropped: number;
}

/** A running callout service; `await using` (or `stop()`) unsubscribes and waits. */
export interface CalloutService extends AsyncDisposable {
  readonly stats: Readonly<CalloutStats>;
  /** Why it cannot answer requests now (not connected, stopped), or undefined when it can. */
  notReady(): string | undefined;
  /** Stops taking requests and waits for those being answered. */
  stop(): Promise<void>;
}

/**
 * Subscribes to {@link AUTH_CALLOUT_SUBJECT} (queue group) and answers every request.
 * Resolves once the server has registered the subscription.
 */
export async function startCalloutService(options: CalloutServiceOptions): Promise<CalloutService> {
  const service = new Callout(options);
  await service.start();
  return service;
}

type Outcome =
  | { kind: "answered"; decision: Decision; request: AuthorizationRequest }
  | { kind: "dropped" };

class Callout implements CalloutService {
  readonly stats: CalloutStats = { allowed: 0, refused: 0, dropped: 0 };
  readonly #o: CalloutServiceOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #inflight = new Set<Promise<void>>();
  readonly #latency: Histogram | undefined;
  readonly #connection: ConnectionState;
  #sub: Subscription | undefined;

  constructor(options: CalloutServiceOptions) {
    this.#o = options;
    this.#log = options.logger.with({ component: "callout" });
    this.#clock = options.clock ?? systemClock;
    this.#latency = options.metrics && registerCalloutMetrics(options.metrics, this.stats);
    this.#connection = new ConnectionState(options.nc);
  }

  notReady(): string | undefined {
    if (!this.#sub) return "not subscribed to authorization requests";
    if (!this.#connection.connected) return "not connected to NATS";
    return undefined;
  }

  async start(): Promise<void> {
    this.#sub = this.#o.nc.subscribe(AUTH_CALLOUT_SUBJECT, {
      queue: this.#o.queue ?? CALLOUT_QUEUE,
      callback: (err, msg) => {
        if (err) {
          this.#log.error(`The authorization request subscription failed: ${err.message}`);
          return;
        }
        const task = this.#handle(msg).catch((e: unknown) => {
          this.stats.dropped++;
          this.#log.error(`Failed to answer an authorization request: ${errorMessage(e)}`);
        }).finally(() => this.#inflight.delete(task));
        this.#inflight.add(task);
      },
    });
    await this.#o.nc.flush();
    this.#log.info(`Answering NATS authorization requests`, {
      account: this.#o.account,
      issuer: this.#o.issuer.getPublicKey(),
      encrypted: this.#o.xkey !== undefined,
    });
  }

  async stop(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (!sub) return;
    sub.unsubscribe();
    await Promise.allSettled([...this.#inflight]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #handle(msg: Msg): Promise<void> {
    const started = this.#clock.monotonic();
    const serverXkey = msg.headers?.get(SERVER_XKEY_HEADER) ?? "";
    const outcome = await this.#answer(msg, serverXkey);
    const elapsed = this.#clock.monotonic() - started;
    const ms = Math.round(elapsed * 10) / 10;
    this.#latency?.observe(elapsed / 1000, {
      result: outcome.kind === "dropped"
        ? "dropped"
        : outcome.decision.kind === "allow"
        ? "allowed"
        : "refused",
    });
    if (outcome.kind === "dropped") {
      this.stats.dropped++;
      return;
    }
    const { decision, request } = outcome;
    const client = {
      client: request.client_info?.host,
      clientName: request.connect_opts?.name || undefined,
      ...(serverXkey !== "" ? { encrypted: true } : {}),
      ms,
    };
    if (decision.kind === "allow") {
      this.stats.allowed++;
      const who = decision.role === "device"
        ? `device "${decision.name}"`
        : `${decision.role} "${decision.name}"`;
      this.#log.info(`Allowed ${who} on NATS`, {
        role: decision.role,
        ...(decision.principal !== undefined ? { principal: decision.principal } : {}),
        account: this.#o.account,
        until: new Date(decision.expiresAt).toISOString(),
        ...client,
      });
    } else {
      this.stats.refused++;
      this.#log.warn(`Refused a NATS connection: ${decision.reason}`, client);
    }
  }

  /** Decodes, decides and replies; what to log comes back to the caller. */
  async #answer(msg: Msg, serverXkey: string): Promise<Outcome> {
    const xkey = this.#o.xkey;
    let data = msg.data;
    if (serverXkey !== "") {
      if (!xkey) {
        this.#log.error(
          `The server encrypts authorization requests but no xkey is configured; set ` +
            `account.xkey_seed_file to the seed of the server's auth_callout xkey`,
        );
        return { kind: "dropped" };
      }
      const opened = openOrNull(xkey, data, serverXkey);
      if (!opened) {
        this.#log.error(
          `Cannot decrypt an authorization request: the server's auth_callout xkey is not ` +
            `the public key of account.xkey_seed_file`,
          { serverXkey },
        );
        return { kind: "dropped" };
      }
      data = opened;
    }
    let claims: ClaimsData<AuthorizationRequest>;
    try {
      claims = decodeAuthorizationRequest(new TextDecoder().decode(data));
    } catch (err) {
      this.#log.warn(`Ignored an authorization request that cannot be read: ${errorMessage(err)}`);
      return { kind: "dropped" };
    }
    const request = claims.nats as AuthorizationRequest;
    // With an xkey, only the server can write a request we can open: a clear one may be forged.
    const decision: Decision = serverXkey === "" && xkey
      ? {
        kind: "deny",
        reason: `the authorization request was not encrypted, but account.xkey_seed_file is ` +
          `configured: refusing it (anyone who may publish on ${AUTH_CALLOUT_SUBJECT} could ` +
          `have sent it); give the server's auth_callout block xkey: ` +
          `"${xkey.getPublicKey()}" (printed by fleet callout nats-config)`,
      }
      : await this.#decide(request);
    const response = this.#response(request, decision);
    const bytes = new TextEncoder().encode(response);
    msg.respond(serverXkey !== "" && xkey ? xkey.seal(bytes, serverXkey) : bytes);
    return { kind: "answered", decision, request };
  }

  async #decide(request: AuthorizationRequest): Promise<Decision> {
    const token = request.connect_opts.auth_token;
    if (token === undefined || token === "") {
      const presented = request.connect_opts.user !== undefined
        ? "a user name and password"
        : request.connect_opts.jwt !== undefined || request.connect_opts.nkey !== undefined
        ? "an nkey or credentials file"
        : "no credentials";
      return {
        kind: "deny",
        reason: `the client presented ${presented} instead of an OIDC access token ` +
          `(pass the token as the NATS token)`,
      };
    }
    let verified: VerifiedToken;
    try {
      verified = await this.#o.verifier.verify(token);
    } catch (err) {
      const reason = rejectionReason(err);
      return {
        kind: "deny",
        reason: reason !== undefined
          ? `the token was rejected: ${reason}`
          : `the token could not be verified: ${errorMessage(err)}`,
      };
    }
    return authorize(verified, this.#o.policy, this.#clock.now());
  }

  #response(request: AuthorizationRequest, decision: Decision): string {
    const { issuer } = this.#o;
    const now = this.#clock.now();
    const answer = decision.kind === "allow"
      ? {
        jwt: encodeUserJwt(
          {
            name: decision.name,
            userKey: request.user_nkey,
            account: this.#o.account,
            expiresAt: decision.expiresAt,
            nats: userClaims(decision.permissions, decision.limits),
          },
          issuer,
          now,
        ),
      }
      : { error: REFUSAL_MESSAGE };
    return encodeAuthorizationResponseJwt(
      request.user_nkey,
      request.server_id.id,
      answer,
      issuer,
      now,
    );
  }
}

/**
 * The `nats` part of a user JWT with these permissions (response TTL in nanoseconds) and
 * limits.
 */
export function userClaims(permissions: NatsPermissions, limits: UserLimits): Partial<User> {
  return {
    pub: { allow: [...permissions.pub.allow] },
    sub: { allow: [...permissions.sub.allow] },
    subs: limits.subs,
    payload: limits.payload,
    data: limits.data,
    ...(permissions.resp
      ? { resp: { max: permissions.resp.max, ttl: permissions.resp.ttlMs * 1_000_000 } }
      : {}),
  };
}

function openOrNull(xkey: KeyPair, data: Uint8Array, sender: string): Uint8Array | null {
  try {
    return xkey.open(data, sender);
  } catch {
    return null;
  }
}

/** The `reason` of a verifier's rejection (e.g. `TokenRejectedError`), if it is one. */
function rejectionReason(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("reason" in err)) return undefined;
  const reason = (err as { reason: unknown }).reason;
  return typeof reason === "string" && reason !== "" ? reason : undefined;
}
