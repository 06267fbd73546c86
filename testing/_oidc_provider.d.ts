/**
 * Types for the part of `oidc-provider` 9.13 that test_provider.ts uses. The package ships
 * none, and `@types/oidc-provider` pulls a newer `@types/node` into the project's type check
 * whose `CryptoKey` and `node:assert` types clash with Deno's own (other modules stop
 * compiling), so the few signatures needed are declared here, after the library's docs.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { JWK } from "jose";

/** Client metadata and stored model payloads, as the adapter sees them. */
export interface AdapterPayload {
  client_id?: string;
  token_endpoint_auth_method?: string;
  token_endpoint_auth_signing_alg?: string;
  grant_types?: string[];
  response_types?: string[];
  redirect_uris?: string[];
  jwks?: { keys: JWK[] };
  scope?: string;
  grantId?: string;
  userCode?: string;
  uid?: string;
  consumed?: unknown;
  [field: string]: unknown;
}

/** The storage interface of every model (`Client`, `ReplayDetection`, ...). */
export interface Adapter {
  upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<AdapterPayload | undefined>;
  findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
  findByUid(uid: string): Promise<AdapterPayload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/** A registered client. */
export interface Client {
  readonly clientId: string;
  readonly jwks?: { keys: JWK[] } | undefined;
}

/** What `getResourceServerInfo` returns for a resource indicator. */
export interface ResourceServer {
  scope: string;
  audience?: string;
  accessTokenTTL?: number;
  accessTokenFormat?: "opaque" | "jwt";
  jwt?: { sign?: { alg?: string; kid?: string } };
}

/** A resolved resource server. */
export interface ResourceServerInstance extends ResourceServer {
  readonly scopes: Set<string>;
  identifier(): string;
}

/** An access token being issued (`AccessToken` or `ClientCredentials`). */
export interface IssuedToken {
  clientId?: string | undefined;
  /** The signed-in account, for tokens of user grants (device flow). */
  accountId?: string | undefined;
  scope?: string | undefined;
  readonly expiration: number;
  readonly tokenType: string;
  save(): Promise<string>;
}

/** A JWT access token before signing; customizers edit it in place. */
export interface JWTStructured {
  header?: Record<string, unknown> | undefined;
  payload: Record<string, unknown>;
}

/** The per-request context of oidc-provider on the Koa context. */
export interface OIDCContext {
  readonly client: Client;
  readonly params: Record<string, unknown>;
  entity(key: string, value: unknown): void;
}

/** The Koa context, as far as used. */
export interface KoaContext {
  readonly method: string;
  readonly path: string;
  readonly req: IncomingMessage;
  body: unknown;
  status: number;
  is(...types: string[]): string | false | null;
  get(field: string): string;
}

/** The Koa context inside a token endpoint grant handler. */
export interface TokenEndpointGrantContext extends KoaContext {
  readonly oidc: OIDCContext;
}

/** An error the provider answers with (`error`, `error_description`). */
export class OIDCProviderError extends Error {
  error: string;
  error_description?: string | undefined;
  error_detail?: string | undefined;
  statusCode: number;
}

/** The provider's error classes. */
export namespace errors {
  class InvalidRequest extends OIDCProviderError {
    constructor(description?: string);
  }
  class InvalidGrant extends OIDCProviderError {
    constructor(description?: string);
  }
  class InvalidTarget extends OIDCProviderError {
    constructor(description?: string);
  }
  class SlowDown extends OIDCProviderError {
    constructor(description?: string);
  }
}

/** What `findAccount` returns for a known account. */
export interface Account {
  accountId: string;
  claims(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

/** A pending end-user interaction (login or consent) of an authorization or device flow. */
export interface Interaction {
  readonly uid: string;
  readonly prompt: {
    name: string;
    details: {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
  };
  readonly params: Record<string, unknown>;
  readonly session?: { accountId?: string } | undefined;
  readonly grantId?: string | undefined;
}

/** What an interaction ends with (`interactionFinished`). */
export type InteractionResult =
  | { login?: { accountId: string }; consent?: { grantId: string } }
  | { error: string; error_description?: string };

/** The consent an account gave a client. */
export interface Grant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

/** The configuration options used. */
export interface Configuration {
  adapter?: (name: string) => Adapter;
  jwks?: { keys: JWK[] };
  scopes?: string[];
  clientDefaults?: { id_token_signed_response_alg?: string };
  cookies?: { keys?: string[] };
  ttl?: {
    ClientCredentials?: number;
    AccessToken?: number;
    DeviceCode?: number;
    Grant?: number;
    Interaction?: number;
    Session?: number;
  };
  findAccount?: (ctx: KoaContext, id: string) => Account | undefined | Promise<Account | undefined>;
  /** Scope name → the claims it releases. */
  claims?: Record<string, string[]>;
  /** When false, an ID token carries the released claims even when an access token is issued. */
  conformIdTokenClaims?: boolean;
  interactions?: { url?: (ctx: KoaContext, interaction: Interaction) => string };
  features?: {
    devInteractions?: { enabled: boolean };
    clientCredentials?: { enabled: boolean };
    deviceFlow?: {
      enabled: boolean;
      /** Renders the page asking for the user code; `form` is the library's form. */
      userCodeInputSource?: (ctx: KoaContext, form: string) => void | Promise<void>;
      /** Renders the page confirming the code; `form` holds the hidden inputs. */
      userCodeConfirmSource?: (ctx: KoaContext, form: string) => void | Promise<void>;
      /** Renders the page shown after the sign-in. */
      successSource?: (ctx: KoaContext) => void | Promise<void>;
    };
    resourceIndicators?: {
      enabled: boolean;
      defaultResource?: (ctx: KoaContext, client: Client) => string | undefined;
      useGrantedResource?: (ctx: KoaContext, model: unknown) => boolean;
      getResourceServerInfo?: (
        ctx: KoaContext,
        resourceIndicator: string,
        client: Client,
      ) => ResourceServer | Promise<ResourceServer>;
    };
  };
  formats?: {
    customizers?: {
      jwt?: (ctx: KoaContext, token: IssuedToken, parts: JWTStructured) => void | Promise<void>;
    };
  };
}

/** The OpenID Provider (a Koa application). */
export default class Provider {
  constructor(issuer: string, configuration?: Configuration);
  readonly issuer: string;
  /** A request handler for `node:http`. */
  callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** Adds a Koa middleware that runs before the provider's routes. */
  use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): this;
  registerGrantType(
    name: string,
    handler: (ctx: TokenEndpointGrantContext) => Promise<void>,
    params?: readonly string[],
    duplicates?: readonly string[],
  ): void;
  on(
    event: "grant.error" | "server_error",
    listener: (ctx: KoaContext, err: OIDCProviderError) => void,
  ): this;
  /** The interaction the request's cookie points at. */
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  /** Stores the result and redirects (303) the user agent back to the flow. */
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: InteractionResult,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  readonly Grant: {
    new (properties: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  };
  readonly ClientCredentials: new (properties: {
    client: Client;
    scope?: string | undefined;
    resourceServer?: ResourceServerInstance;
  }) => IssuedToken;
  readonly ResourceServer: new (identifier: string, data: ResourceServer) => ResourceServerInstance;
}
