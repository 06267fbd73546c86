/**
 * A real OpenID Provider for tests, built on the certified `oidc-provider` library and run
 * in this process over plain http on 127.0.0.1 (or https, `tls`): discovery, JWKS, JWT access tokens for one
 * resource (audience), `client_credentials` with `private_key_jwt`, and the RFC 7523
 * JWT-bearer grant the way Zitadel offers it to machine users.
 *
 * ```ts
 * await using idp = await startTestProvider({ audience: "nats://fleet" });
 * const device = await idp.addMachineUser({ id: "dev1", roles: ["device"] });
 * const token = await idp.mintToken(device);
 * ```
 *
 * With `deviceFlow`, it also offers the RFC 8628 device authorization grant to a public
 * client (the CLI), for people added with `addAccount`; `completeDeviceSignIn` plays the
 * person's browser: the code verification page, then a minimal login and consent page that
 * the fixture serves at `/interaction/:uid` through oidc-provider's interaction API.
 *
 * `oidc-provider` prints two warnings on stderr when loaded under Deno (unsupported runtime,
 * and a pre-parsed request body on the first token request); both are expected.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
} from "jose";
// @ts-types="./_oidc_provider.d.ts"
import Provider, {
  type Adapter,
  type AdapterPayload,
  type Configuration,
  errors,
  type InteractionResult,
  type KoaContext,
  type ResourceServer,
  type TokenEndpointGrantContext,
} from "oidc-provider";
import { type Logger, silentLogger } from "../adapters/logger.ts";
import {
  liveKeys,
  type ManagedProject,
  type ManagedUser,
  serveManagement,
} from "./_zitadel_management.ts";
import { errorMessage } from "../core/errors.ts";
import { DEVICE_CODE_GRANT_TYPE } from "../adapters/oidc/device_flow.ts";
import {
  createTokenSource,
  JWT_BEARER_GRANT_TYPE,
  JWT_CLIENT_ASSERTION_TYPE,
  type TokenGrant,
} from "../adapters/oidc/token_source.ts";
import { ZITADEL_PROJECT_ROLES_SCOPE, zitadelProjectAudienceScope } from "../core/zitadel.ts";

/** The algorithms the test provider signs with and generates machine-user keys for. */
export type TestSigningAlgorithm = "ES256" | "RS256";

/** Options of {@link startTestProvider}. */
export interface TestProviderOptions {
  /**
   * The one resource (RFC 8707) the provider issues tokens for; the tokens' `aud`.
   * @default "nats://fleet"
   */
  audience?: string;
  /**
   * Lifetime of the access tokens.
   * @default 600
   */
  accessTokenTtlSeconds?: number;
  /**
   * Algorithm of the provider's signing keys.
   * @default "ES256"
   */
  signingAlgorithm?: TestSigningAlgorithm;
  /**
   * The claim carrying a machine user's device id; `"sub"` replaces the subject.
   * @default "fleet_device_id"
   */
  deviceIdClaim?: string;
  /**
   * Organisation id and primary domain in the Zitadel roles claim
   * `{"urn:zitadel:iam:org:project:roles": {"<role>": {"<orgId>": "<orgDomain>"}}}`.
   * @default "fleet-org"
   */
  orgId?: string;
  /** @default "fleet.localhost" */
  orgDomain?: string;
  /**
   * Scopes clients may ask for (all land in the token's `scope`).
   * @default ["fleet"]
   */
  scopes?: string[];
  /** Listen on this port instead of a free one. */
  port?: number;
  /** Listen on this address, which is also the issuer's host. @default "127.0.0.1" */
  host?: string;
  /**
   * Serve https with this certificate and key (PEM files): the issuer is then
   * `https://<host>:<port>`, as verifiers beyond loopback require. Plain http unset.
   */
  tls?: { certFile: string; keyFile: string };
  /**
   * The `typ` header of its JWT access tokens: RFC 9068's `at+jwt`, or `JWT` as Zitadel
   * signs them (like its ID tokens). @default "at+jwt"
   */
  accessTokenType?: "at+jwt" | "JWT";
  /** Offer the device authorization grant (RFC 8628) to a public client. Off by default. */
  deviceFlow?: TestDeviceFlowOptions;
  /** Where the provider's request errors are logged (debug level). @default silentLogger */
  logger?: Logger;
  /**
   * Serve Zitadel's Management API calls for machine users and their keys (see
   * `_zitadel_management.ts`) to callers presenting `Bearer <managementToken>`. Off unset.
   */
  managementToken?: string;
  /**
   * Behave as Zitadel does for machine users of the project with this id: their access tokens
   * carry roles (in {@link ZITADEL_ROLES_CLAIM} and `urn:zitadel:iam:org:project:<id>:roles`,
   * no flat `roles`) only when the request asks for `urn:zitadel:iam:org:projects:roles` and
   * for the project as audience (`urn:zitadel:iam:org:project:id:<id>:aud`), and their `aud`
   * is the project id only when asked for (else the client's own id). `audience` defaults to it.
   */
  zitadelProjectId?: string;
}

/** Options of {@link TestProviderOptions.deviceFlow}. */
export interface TestDeviceFlowOptions {
  /**
   * The public client (no secret) allowed to use the grant.
   * @default "fleet-cli"
   */
  clientId?: string;
  /**
   * Lifetime of device and user codes (the `expires_in` of the device authorization response).
   * @default 600
   */
  codeTtlSeconds?: number;
  /**
   * Announced as `interval` and enforced: a poll sooner than this after the previous poll of
   * the same code is answered `slow_down` (oidc-provider itself never sends it). Unset: no
   * `interval` in the response, and no enforcement.
   */
  intervalSeconds?: number;
}

/** Options of {@link TestProvider.addAccount}. */
export interface AccountOptions {
  /** The account id: `sub` of its tokens, and what is typed in the fixture's login page. */
  id: string;
  /** Project roles, put in both the Zitadel nested claim and the flat `roles` claim. */
  roles: string[];
  /** More claims for this account's access tokens. */
  extraClaims?: Record<string, unknown>;
}

/** Options of {@link TestProvider.completeDeviceSignIn}. */
export interface DeviceSignInOptions {
  /** The account that signs in (see {@link TestProvider.addAccount}). */
  account: string;
  /**
   * `approve`: confirm the code, log in and consent. `abort`: press "Abort" on the code
   * confirmation page. `deny`: log in, then decline consent. Both refusals end the flow with
   * `access_denied`.
   * @default "approve"
   */
  decision?: "approve" | "abort" | "deny";
}

/** Options of {@link TestProvider.addMachineUser}. */
export interface MachineUserOptions {
  /** The client id (Zitadel: the machine user's `userId`). */
  id: string;
  /** Project roles, put in both the Zitadel nested claim and the flat `roles` claim. */
  roles: string[];
  /** Put in the device id claim. @default id */
  deviceId?: string;
  /** More claims for this user's tokens; they override the ones above. */
  extraClaims?: Record<string, unknown>;
  /**
   * Algorithm of the generated key pair.
   * @default "ES256"
   */
  keyAlgorithm?: TestSigningAlgorithm;
}

/** A registered machine user and its private key. */
export interface MachineUser {
  /** The client id. */
  clientId: string;
  /** The private key, as a JWK with `kid` and `alg`; its public half is registered. */
  privateKeyJwk: JWK;
  /** The device id its tokens carry. */
  deviceId: string;
  /** Its roles. */
  roles: readonly string[];
}

/** Options of {@link TestProvider.mintToken}. */
export interface MintTokenOptions {
  /** @default "jwt-bearer" */
  grant?: TokenGrant;
  /** Space-separated scopes. */
  scope?: string;
}

/** A running test provider; `await using` stops it. */
export interface TestProvider extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` (or the `host`, or `https` with `tls`), the `iss` of its tokens. */
  readonly issuer: string;
  /** The URL of its discovery document. */
  readonly discoveryUrl: string;
  /** The URL of its JWKS. */
  readonly jwksUri: string;
  /** The URL of its token endpoint. */
  readonly tokenEndpoint: string;
  /** The `aud` of its access tokens. */
  readonly audience: string;
  /** The claim carrying the device id. */
  readonly deviceIdClaim: string;
  /** `kid` of the key it signs new tokens with. */
  readonly signingKid: string;
  /** Whether it is listening. */
  readonly running: boolean;
  /** Registers a machine user (client) with a freshly generated key pair. */
  addMachineUser(options: MachineUserOptions): Promise<MachineUser>;
  /**
   * Gets an access token for `user` from the token endpoint, through {@link createTokenSource}.
   * @throws {TokenMintError}
   */
  mintToken(user: MachineUser, options?: MintTokenOptions): Promise<string>;
  /**
   * Signs new tokens with a new key (new `kid`), published in the JWKS before the old one,
   * which stays published so tokens already issued keep verifying.
   * @returns the new `kid`
   */
  rotateSigningKey(): Promise<string>;
  /** Stops listening (the provider is "down"); registered users and keys are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** The client id of the device flow's public client; undefined without `deviceFlow`. */
  readonly deviceFlowClientId: string | undefined;
  /** Registers a person who can sign in through the device flow. */
  addAccount(options: AccountOptions): void;
  /**
   * Does what the person does in a browser: opens `verificationUri` (the complete one, with
   * `user_code`), confirms the code, logs in as `options.account` and consents, or refuses.
   * @throws {Error} when a page is not what the flow expects
   */
  completeDeviceSignIn(verificationUri: string, options: DeviceSignInOptions): Promise<void>;
}

/** Starts a {@link TestProvider} on 127.0.0.1 (or `options.host`) and a free port (or `options.port`). */
export async function startTestProvider(options: TestProviderOptions = {}): Promise<TestProvider> {
  const provider = new OidcTestProvider(options);
  await provider.start();
  return provider;
}

/** The Zitadel claim holding project roles: `{ role: { orgId: orgDomain } }`. */
export const ZITADEL_ROLES_CLAIM = "urn:zitadel:iam:org:project:roles";

interface DeviceFlowSettings {
  clientId: string;
  codeTtlSeconds: number;
  intervalSeconds: number | undefined;
}

interface AccountRecord {
  roles: string[];
  extraClaims: Record<string, unknown>;
}

interface UserRecord extends ManagedUser {
  extraClaims?: Record<string, unknown>;
}

type Callback = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

class OidcTestProvider implements TestProvider {
  readonly audience: string;
  readonly deviceIdClaim: string;
  readonly #ttl: number;
  readonly #alg: TestSigningAlgorithm;
  readonly #orgId: string;
  readonly #orgDomain: string;
  readonly #scopes: string[];
  readonly #logger: Logger;
  readonly #managementToken: string | undefined;
  readonly #zitadelProjectId: string | undefined;
  /**
   * The resource (RFC 8707) its tokens are for: the audience, or, as Zitadel, a name of the
   * library's own (it wants an absolute URI; Zitadel's clients send no `resource`).
   */
  readonly #resource: string;
  readonly #store = new MemoryStore();
  readonly #users = new Map<string, UserRecord>();
  /** Projects created through the Management API emulation. */
  readonly #projects = new Map<string, ManagedProject>();
  readonly #accounts = new Map<string, AccountRecord>();
  readonly #deviceFlow: DeviceFlowSettings | undefined;
  /** The device flow client's metadata, served by the `Client` adapter beside machine users. */
  readonly #publicClients = new Map<string, AdapterPayload>();
  /** Last poll (epoch ms) per device code, for the `slow_down` check. */
  readonly #lastPolls = new Map<string, number>();
  /** Private signing keys, newest (the one used) first. */
  #signingKeys: JWK[] = [];
  #port: number;
  readonly #host: string;
  readonly #tls: { cert: string; key: string } | undefined;
  readonly #accessTokenType: "at+jwt" | "JWT";
  #server: Server | undefined;
  #callback: Callback | undefined;

  constructor(options: TestProviderOptions) {
    this.#zitadelProjectId = options.zitadelProjectId;
    this.audience = options.audience ?? options.zitadelProjectId ?? "nats://fleet";
    this.#resource = options.zitadelProjectId === undefined
      ? this.audience
      : `urn:fleet-test:zitadel-project:${options.zitadelProjectId}`;
    this.deviceIdClaim = options.deviceIdClaim ?? "fleet_device_id";
    this.#ttl = options.accessTokenTtlSeconds ?? 600;
    this.#alg = options.signingAlgorithm ?? "ES256";
    this.#orgId = options.orgId ?? "fleet-org";
    this.#orgDomain = options.orgDomain ?? "fleet.localhost";
    this.#scopes = [
      ...options.scopes ?? ["fleet"],
      ...options.zitadelProjectId === undefined ? [] : [
        ZITADEL_PROJECT_ROLES_SCOPE,
        zitadelProjectAudienceScope(options.zitadelProjectId),
      ],
    ];
    this.#logger = (options.logger ?? silentLogger).with({ component: "test-oidc-provider" });
    this.#port = options.port ?? 0;
    this.#managementToken = options.managementToken;
    this.#host = options.host ?? "127.0.0.1";
    this.#tls = options.tls && {
      cert: Deno.readTextFileSync(options.tls.certFile),
      key: Deno.readTextFileSync(options.tls.keyFile),
    };
    this.#accessTokenType = options.accessTokenType ?? "at+jwt";
    if (options.deviceFlow !== undefined) {
      const clientId = options.deviceFlow.clientId ?? "fleet-cli";
      this.#deviceFlow = {
        clientId,
        codeTtlSeconds: options.deviceFlow.codeTtlSeconds ?? 600,
        intervalSeconds: options.deviceFlow.intervalSeconds,
      };
      this.#publicClients.set(clientId, {
        client_id: clientId,
        token_endpoint_auth_method: "none",
        grant_types: [DEVICE_CODE_GRANT_TYPE],
        response_types: [],
        redirect_uris: [],
      });
    }
    if (!Number.isSafeInteger(this.#ttl) || this.#ttl <= 0) {
      throw new RangeError(
        `accessTokenTtlSeconds must be a positive whole number of seconds: got ${this.#ttl}`,
      );
    }
  }

  get issuer(): string {
    return `${this.#tls ? "https" : "http"}://${this.#host}:${this.#port}`;
  }
  get discoveryUrl(): string {
    return `${this.issuer}/.well-known/openid-configuration`;
  }
  get jwksUri(): string {
    return `${this.issuer}/jwks`;
  }
  get tokenEndpoint(): string {
    return `${this.issuer}/token`;
  }
  get signingKid(): string {
    const kid = this.#signingKeys[0]?.kid;
    if (kid === undefined) throw new Error("The test provider has not been started yet");
    return kid;
  }
  get running(): boolean {
    return this.#server !== undefined;
  }
  get deviceFlowClientId(): string | undefined {
    return this.#deviceFlow?.clientId;
  }

  async start(): Promise<void> {
    if (this.#server !== undefined) return;
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      const callback = this.#callback;
      if (callback === undefined) {
        res.writeHead(503).end();
        return;
      }
      callback(req, res).catch((err: unknown) => {
        this.#logger.warn("Request failed", { error: errorMessage(err) });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    const server: Server = this.#tls ? createTlsServer(this.#tls, handle) : createServer(handle);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, this.#host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    if (this.#callback === undefined) {
      this.#signingKeys = [await generateSigningKey(this.#alg)];
      this.#callback = this.#buildProvider();
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async rotateSigningKey(): Promise<string> {
    const key = await generateSigningKey(this.#alg);
    this.#signingKeys = [key, ...this.#signingKeys];
    this.#callback = this.#buildProvider();
    return this.signingKid;
  }

  async addMachineUser(options: MachineUserOptions): Promise<MachineUser> {
    if (this.#users.has(options.id)) {
      throw new Error(`Machine user "${options.id}" is already registered`);
    }
    const alg = options.keyAlgorithm ?? "ES256";
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateKeyJwk: JWK = { ...await exportJWK(privateKey), kid, alg };
    const deviceId = options.deviceId ?? options.id;
    this.#users.set(options.id, {
      clientId: options.id,
      deviceId,
      roles: [...options.roles],
      extraClaims: { ...options.extraClaims },
      userName: options.id,
      name: options.id,
      description: "",
      keys: new Map([[kid, {
        publicJwk: { ...publicJwk, kid, alg, use: "sig" },
        expiresAt: undefined,
      }]]),
      grantedProjects: new Set(),
    });
    return { clientId: options.id, privateKeyJwk, deviceId, roles: [...options.roles] };
  }

  addAccount(options: AccountOptions): void {
    if (this.#accounts.has(options.id)) {
      throw new Error(`Account "${options.id}" is already registered`);
    }
    this.#accounts.set(options.id, {
      roles: [...options.roles],
      extraClaims: { ...options.extraClaims },
    });
  }

  async completeDeviceSignIn(verificationUri: string, options: DeviceSignInOptions): Promise<void> {
    await new TestBrowser(this.issuer).signIn(verificationUri, options);
  }

  async mintToken(user: MachineUser, options: MintTokenOptions = {}): Promise<string> {
    return await createTokenSource({
      issuer: this.issuer,
      clientId: user.clientId,
      privateKeyJwk: user.privateKeyJwk,
      grant: options.grant ?? "jwt-bearer",
      ...(this.#zitadelProjectId === undefined ? { audience: this.audience } : {}),
      ...(options.scope !== undefined ? { scope: options.scope } : {}),
      logger: this.#logger,
    }).token();
  }

  /**
   * Client metadata by id: machine users (with the keys they may sign in with now) and the
   * device flow's public client.
   */
  readonly #clientMetadata = (id: string): AdapterPayload | undefined => {
    const user = this.#users.get(id);
    if (user === undefined) return this.#publicClients.get(id);
    const keys = liveKeys(user, Date.now());
    return {
      client_id: id,
      token_endpoint_auth_method: "private_key_jwt",
      // Whichever algorithm the user's current keys use (ES256 added here, RS256 by Zitadel).
      ...(keys[0]?.alg !== undefined ? { token_endpoint_auth_signing_alg: keys[0].alg } : {}),
      grant_types: ["client_credentials", JWT_BEARER_GRANT_TYPE],
      response_types: [],
      redirect_uris: [],
      jwks: { keys },
    };
  };

  #resourceServer(): ResourceServer {
    return {
      audience: this.audience,
      scope: this.#scopes.join(" "),
      accessTokenFormat: "jwt",
      accessTokenTTL: this.#ttl,
      jwt: { sign: { alg: this.#alg } },
    };
  }

  /** A new `oidc-provider` instance over the current keys, users and stored state. */
  #buildProvider(): Callback {
    const resource = this.#resource;
    const configuration: Configuration = {
      adapter: (name: string) => this.#store.adapter(name, this.#clientMetadata),
      jwks: { keys: this.#signingKeys },
      scopes: this.#scopes,
      clientDefaults: { id_token_signed_response_alg: this.#alg },
      cookies: { keys: ["fleet-test-provider-only"] },
      ttl: {
        ClientCredentials: this.#ttl,
        AccessToken: this.#ttl,
        ...(this.#deviceFlow
          ? {
            DeviceCode: this.#deviceFlow.codeTtlSeconds,
            Interaction: this.#deviceFlow.codeTtlSeconds,
            Session: 3600,
            Grant: 3600,
          }
          : {}),
      },
      findAccount: (_ctx, id) => {
        const account = this.#accounts.get(id);
        if (account === undefined) return undefined;
        return { accountId: id, claims: () => ({ sub: id, ...this.#claimsForAccount(account) }) };
      },
      // A person's ID token carries their roles, as Zitadel's "User Roles Inside ID Token"
      // does: what the callout must still refuse, an ID token being no access token.
      claims: { openid: ["sub", "roles", ZITADEL_ROLES_CLAIM] },
      conformIdTokenClaims: false,
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        deviceFlow: {
          enabled: this.#deviceFlow !== undefined,
          // Bare pages around the library's forms (its defaults print a notice each).
          userCodeInputSource: (ctx, form) => {
            ctx.body = `<!DOCTYPE html><title>Enter code</title>${form}`;
          },
          userCodeConfirmSource: (ctx, form) => {
            ctx.body = `<!DOCTYPE html><title>Confirm code</title>${form}`;
          },
          successSource: (ctx) => {
            ctx.body = `<!DOCTYPE html><title>Signed in</title>`;
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => resource,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, asked) => {
            if (asked !== resource) {
              throw new errors.InvalidTarget(`unknown resource "${asked}"; use "${resource}"`);
            }
            return this.#resourceServer();
          },
        },
      },
      formats: {
        customizers: {
          jwt: (_ctx, token, parts) => {
            parts.header = { ...parts.header, typ: this.#accessTokenType };
            const account = token.accountId === undefined
              ? undefined
              : this.#accounts.get(token.accountId);
            if (account !== undefined) {
              Object.assign(parts.payload, this.#claimsForAccount(account));
              return;
            }
            const user = token.clientId === undefined ? undefined : this.#users.get(token.clientId);
            if (user === undefined) return;
            Object.assign(parts.payload, this.#claimsFor(user, token.scope));
          },
        },
      },
    };
    const provider = new Provider(this.issuer, configuration);
    provider.on("grant.error", (_ctx, err) => {
      this.#logger.debug("Token request refused", { error: err.message, detail: err.error_detail });
    });
    provider.on("server_error", (_ctx, err) => {
      this.#logger.warn("Provider error", { error: err.message });
    });
    // Zitadel's JWT-bearer request carries no client authentication; oidc-provider insists on
    // one. The assertion (iss = sub = client id, aud = issuer, signed with the client's key)
    // is also a valid private_key_jwt client assertion, so it is passed as one too.
    provider.use(async (ctx, next) => {
      if (ctx.method === "POST" && ctx.path === "/token" && ctx.is("urlencoded") !== false) {
        const params = new URLSearchParams(await readBody(ctx.req));
        if (this.#pollsTooSoon(params)) {
          const err = new errors.SlowDown();
          ctx.status = err.statusCode;
          ctx.body = { error: err.error, error_description: err.error_description };
          return;
        }
        const assertion = params.get("assertion");
        if (
          params.get("grant_type") === JWT_BEARER_GRANT_TYPE && assertion !== null &&
          !params.has("client_id") && !params.has("client_assertion") &&
          ctx.get("authorization") === ""
        ) {
          params.set("client_assertion_type", JWT_CLIENT_ASSERTION_TYPE);
          params.set("client_assertion", assertion);
        }
        Object.assign(ctx.req, { body: params.toString() });
      }
      await next();
      this.#announceInterval(ctx);
    });
    provider.registerGrantType(
      JWT_BEARER_GRANT_TYPE,
      (ctx) => this.#jwtBearerGrant(provider, ctx),
      ["assertion", "scope", "resource"],
      ["resource"],
    );
    const callback = provider.callback();
    return async (req, res) => {
      const path = new URL(req.url ?? "/", this.issuer).pathname;
      if (path.startsWith("/management/v1/") && this.#managementToken !== undefined) {
        await serveManagement(
          this.#users,
          this.#projects,
          this.#managementToken,
          req,
          res,
          await readBody(req),
        );
      } else if (path.startsWith("/interaction/")) {
        await this.#interaction(provider, req, res);
      } else {
        await callback(req, res);
      }
    };
  }

  /** RFC 8628 §3.5: polling a device code faster than the interval earns `slow_down`. */
  #pollsTooSoon(params: URLSearchParams): boolean {
    const intervalSeconds = this.#deviceFlow?.intervalSeconds;
    const code = params.get("device_code");
    if (
      intervalSeconds === undefined || code === null ||
      params.get("grant_type") !== DEVICE_CODE_GRANT_TYPE
    ) {
      return false;
    }
    const now = Date.now();
    const last = this.#lastPolls.get(code);
    this.#lastPolls.set(code, now);
    return last !== undefined && now - last < intervalSeconds * 1000;
  }

  /** oidc-provider leaves `interval` out of the device authorization response (5 s applies). */
  #announceInterval(ctx: KoaContext): void {
    const intervalSeconds = this.#deviceFlow?.intervalSeconds;
    if (
      intervalSeconds !== undefined && ctx.method === "POST" && ctx.path === "/device/auth" &&
      ctx.status === 200 && typeof ctx.body === "object" && ctx.body !== null
    ) {
      Object.assign(ctx.body, { interval: intervalSeconds });
    }
  }

  /**
   * The login and consent pages oidc-provider sends the person to (`/interaction/:uid`): a
   * form to type the account id (login), or to approve or decline (consent). Each is finished
   * through `interactionFinished`, the library's way to hand the result back to the flow.
   */
  async #interaction(
    provider: Provider,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const interaction = await provider.interactionDetails(req, res);
    const { prompt } = interaction;
    if (req.method === "GET") {
      const fields = prompt.name === "login" ? `<input type="text" name="account"/>` : "";
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(
        `<!DOCTYPE html><title>${prompt.name}</title>` +
          `<form method="post" action="/interaction/${interaction.uid}">` +
          `<input type="hidden" name="prompt" value="${prompt.name}"/>${fields}` +
          `<button name="decision" value="approve">Continue</button>` +
          `<button name="decision" value="deny">Deny</button></form>`,
      );
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    let result: InteractionResult;
    if (form.get("decision") !== "approve") {
      result = { error: "access_denied", error_description: "the user declined the request" };
    } else if (prompt.name === "login") {
      const accountId = form.get("account") ?? "";
      if (!this.#accounts.has(accountId)) {
        res.writeHead(400, { "content-type": "text/plain" }).end(`unknown account "${accountId}"`);
        return;
      }
      result = { login: { accountId } };
    } else if (prompt.name === "consent") {
      result = { consent: { grantId: await this.#consent(provider, interaction) } };
    } else {
      throw new Error(`The test provider cannot complete a "${prompt.name}" prompt`);
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  }

  /** Grants what the consent prompt says is missing, like the library's example consent page. */
  async #consent(
    provider: Provider,
    interaction: Awaited<ReturnType<Provider["interactionDetails"]>>,
  ): Promise<string> {
    const accountId = interaction.session?.accountId;
    const clientId = interaction.params.client_id;
    if (accountId === undefined || typeof clientId !== "string") {
      throw new Error("The consent prompt has no signed-in account or client");
    }
    const existing = interaction.grantId === undefined
      ? undefined
      : await provider.Grant.find(interaction.grantId);
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } =
      interaction.prompt.details;
    if (missingOIDCScope !== undefined) grant.addOIDCScope(missingOIDCScope.join(" "));
    if (missingOIDCClaims !== undefined) grant.addOIDCClaims(missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(" "));
    }
    return await grant.save();
  }

  /** RFC 7523 §2.1: an access token for the client the assertion is about. */
  async #jwtBearerGrant(
    provider: Provider,
    ctx: TokenEndpointGrantContext,
  ): Promise<void> {
    const { client, params } = ctx.oidc;
    const assertion = params.assertion;
    if (typeof assertion !== "string" || assertion === "") {
      throw new errors.InvalidRequest("missing required parameter 'assertion'");
    }
    const keys = client.jwks?.keys;
    if (keys === undefined) throw new errors.InvalidGrant("the client has no registered keys");
    try {
      await jwtVerify(assertion, createLocalJWKSet({ keys: keys.map((key) => ({ ...key })) }), {
        issuer: client.clientId,
        subject: client.clientId,
        audience: [this.issuer, this.tokenEndpoint],
        algorithms: ["ES256", "RS256", "PS256", "EdDSA"],
        requiredClaims: ["exp", "jti"],
        clockTolerance: 5,
      });
    } catch (err) {
      throw new errors.InvalidGrant(`invalid assertion: ${errorMessage(err)}`);
    }
    if (params.resource !== undefined && params.resource !== this.#resource) {
      throw new errors.InvalidTarget(`unknown resource; use "${this.#resource}"`);
    }
    // Like oidc-provider's client_credentials: scopes the resource does not know are left out.
    const scopes = typeof params.scope === "string"
      ? params.scope.split(" ").filter((scope) => this.#scopes.includes(scope))
      : [];
    const token = new provider.ClientCredentials({
      client,
      scope: scopes.join(" ") || undefined,
      resourceServer: new provider.ResourceServer(this.#resource, this.#resourceServer()),
    });
    ctx.oidc.entity("ClientCredentials", token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      expires_in: token.expiration,
      token_type: token.tokenType,
      ...(token.scope ? { scope: token.scope } : {}),
    };
  }

  #claimsForAccount(account: AccountRecord): Record<string, unknown> {
    return {
      [ZITADEL_ROLES_CLAIM]: this.#nestedRoles(account.roles),
      roles: [...account.roles],
      ...account.extraClaims,
    };
  }

  #nestedRoles(roles: readonly string[]): Record<string, Record<string, string>> {
    return Object.fromEntries(roles.map((role) => [role, { [this.#orgId]: this.#orgDomain }]));
  }

  #claimsFor(user: UserRecord, scope: string | undefined): Record<string, unknown> {
    const projectId = this.#zitadelProjectId;
    if (projectId !== undefined) {
      const scopes = new Set(scope?.split(" ") ?? []);
      const asAudience = scopes.has(zitadelProjectAudienceScope(projectId));
      const roles = asAudience && scopes.has(ZITADEL_PROJECT_ROLES_SCOPE)
        ? {
          [ZITADEL_ROLES_CLAIM]: this.#nestedRoles(user.roles),
          [`urn:zitadel:iam:org:project:${projectId}:roles`]: this.#nestedRoles(user.roles),
        }
        : {};
      return {
        aud: asAudience ? [projectId, user.clientId] : [user.clientId],
        [this.deviceIdClaim]: user.deviceId,
        ...roles,
        ...user.extraClaims,
      };
    }
    return {
      [this.deviceIdClaim]: user.deviceId,
      [ZITADEL_ROLES_CLAIM]: this.#nestedRoles(user.roles),
      roles: [...user.roles],
      ...user.extraClaims,
    };
  }
}

async function generateSigningKey(alg: TestSigningAlgorithm): Promise<JWK> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { ...await exportJWK(privateKey), kid, alg, use: "sig" };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of req as AsyncIterable<Uint8Array | string>) {
    chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  }
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(body);
}

/** The provider's storage: machine users as clients, everything else in memory. */
class MemoryStore {
  readonly #data = new Map<string, { payload: AdapterPayload; expiresAt: number }>();

  adapter(name: string, clients: (id: string) => AdapterPayload | undefined): Adapter {
    const data = this.#data;
    const key = (id: string): string => `${name}:${id}`;
    const get = (id: string): AdapterPayload | undefined => {
      if (name === "Client") return clients(id);
      const entry = data.get(key(id));
      if (entry === undefined) return undefined;
      // An expired device code is kept: oidc-provider checks expiry itself and then answers
      // expired_token (RFC 8628 §3.5) rather than "not found".
      if (entry.expiresAt <= Date.now() && name !== "DeviceCode") {
        data.delete(key(id));
        return undefined;
      }
      return entry.payload;
    };
    const findBy = (field: "userCode" | "uid", value: string): AdapterPayload | undefined => {
      for (const [k, entry] of data) {
        if (k.startsWith(`${name}:`) && entry.payload[field] === value) return entry.payload;
      }
      return undefined;
    };
    return {
      upsert: (id, payload, expiresIn) => {
        const ttl = expiresIn === undefined ? Infinity : expiresIn * 1000;
        data.set(key(id), { payload, expiresAt: Date.now() + ttl });
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(get(id)),
      findByUserCode: (userCode) => Promise.resolve(findBy("userCode", userCode)),
      findByUid: (uid) => Promise.resolve(findBy("uid", uid)),
      consume: (id) => {
        const payload = get(id);
        if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy: (id) => {
        data.delete(key(id));
        return Promise.resolve();
      },
      revokeByGrantId: (grantId) => {
        for (const [k, entry] of data) {
          if (entry.payload.grantId === grantId) data.delete(k);
        }
        return Promise.resolve();
      },
    };
  }
}

/**
 * Just enough of a browser for the device flow's pages: a cookie jar, redirects followed by
 * hand, and forms read from their hidden inputs.
 */
class TestBrowser {
  readonly #origin: string;
  readonly #cookies = new Map<string, string>();

  constructor(origin: string) {
    this.#origin = origin;
  }

  async signIn(verificationUri: string, options: DeviceSignInOptions): Promise<void> {
    const decision = options.decision ?? "approve";
    // The complete URI answers a self-submitting form (xsrf + user_code); submit it.
    let page = await this.#request(verificationUri);
    page = await this.#submit(page, {});
    // The code confirmation page: confirm, or press Abort.
    page = await this.#submit(page, decision === "abort" ? { abort: "yes" } : {});
    if (decision === "abort") return;
    for (let step = 0; step < 4 && page.url.includes("/interaction/"); step++) {
      const prompt = hiddenInputs(page.html).get("prompt");
      const fields: Record<string, string> = prompt === "login"
        ? { account: options.account, decision: "approve" }
        : { decision: decision === "deny" && prompt === "consent" ? "deny" : "approve" };
      page = await this.#submit(page, fields);
    }
    if (page.status !== 200 || page.url.includes("/interaction/")) {
      throw new Error(`The device sign-in did not finish: ${page.status} at ${page.url}`);
    }
  }

  /** Submits the page's first form with its hidden inputs plus `fields`. */
  async #submit(page: Page, fields: Record<string, string>): Promise<Page> {
    const action = /<form[^>]*\saction="([^"]*)"/.exec(page.html)?.[1];
    if (action === undefined) {
      throw new Error(`No form on the page at ${page.url} (HTTP ${page.status})`);
    }
    const body = new URLSearchParams([...hiddenInputs(page.html), ...Object.entries(fields)]);
    return await this.#request(new URL(unescapeHtml(action), page.url).href, body);
  }

  /** GET (or POST `body`), following redirects with the cookie jar. */
  async #request(url: string, body?: URLSearchParams): Promise<Page> {
    let current = new URL(url, this.#origin).href;
    let form = body;
    for (let hop = 0; hop < 10; hop++) {
      const response = await fetch(current, {
        method: form === undefined ? "GET" : "POST",
        headers: {
          cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join("; "),
          ...(form === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }),
        },
        ...(form === undefined ? {} : { body: form }),
        redirect: "manual",
      });
      for (const header of response.headers.getSetCookie()) {
        const [pair = ""] = header.split(";");
        const at = pair.indexOf("=");
        const name = pair.slice(0, at).trim();
        const value = pair.slice(at + 1).trim();
        if (value === "" || /expires=Thu, 01 Jan 1970/i.test(header)) this.#cookies.delete(name);
        else this.#cookies.set(name, value);
      }
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        current = new URL(location, current).href;
        form = undefined;
        continue;
      }
      return { url: current, status: response.status, html: await response.text() };
    }
    throw new Error(`Too many redirects from ${url}`);
  }
}

interface Page {
  url: string;
  status: number;
  html: string;
}

function hiddenInputs(html: string): Map<string, string> {
  const inputs = new Map<string, string>();
  for (
    const match of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)"\s*\/?>/g)
  ) {
    inputs.set(unescapeHtml(match[1] ?? ""), unescapeHtml(match[2] ?? ""));
  }
  return inputs;
}

function unescapeHtml(text: string): string {
  return text.replaceAll("&quot;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}
