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
}

/** The configuration options used. */
export interface Configuration {
  adapter?: (name: string) => Adapter;
  jwks?: { keys: JWK[] };
  scopes?: string[];
  clientDefaults?: { id_token_signed_response_alg?: string };
  cookies?: { keys?: string[] };
  ttl?: { ClientCredentials?: number; AccessToken?: number };
  features?: {
    devInteractions?: { enabled: boolean };
    clientCredentials?: { enabled: boolean };
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
  readonly ClientCredentials: new (properties: {
    client: Client;
    scope?: string | undefined;
    resourceServer?: ResourceServerInstance;
  }) => IssuedToken;
  readonly ResourceServer: new (identifier: string, data: ResourceServer) => ResourceServerInstance;
}
