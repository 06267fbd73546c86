/**
 * A thin client of Zitadel's Management API v1 (REST/JSON), for the calls `fleet device
 * enroll`, `rotate-key` and `fleet zitadel setup` need: find or create a project and its roles,
 * find or create a machine user, add a JSON key to it or remove one, and grant it a project
 * role. Each write reports whether it changed anything, so a
 * repeated enroll is a no-op.
 *
 * @module
 */

import * as z from "zod";

/** The Management API calls this client makes, as Zitadel names them. */
export const ZitadelCalls = {
  listUsers: "ListUsers",
  addMachineUser: "AddMachineUser",
  addMachineKey: "AddMachineKey",
  removeMachineKey: "RemoveMachineKey",
  addUserGrant: "AddUserGrant",
  listProjects: "ListProjects",
  addProject: "AddProject",
  listProjectRoles: "ListProjectRoles",
  addProjectRole: "AddProjectRole",
} as const;
/** A value of {@link ZitadelCalls}. */
export type ZitadelCall = typeof ZitadelCalls[keyof typeof ZitadelCalls];

/** A Management API call failed; the message names the call and Zitadel's answer. */
export class ZitadelApiError extends Error {
  override name = "ZitadelApiError";
  /** The call, e.g. `AddMachineUser`. */
  readonly call: ZitadelCall;
  /** `POST /management/v1/users/machine`. */
  readonly request: string;
  /** HTTP status, when Zitadel answered. */
  readonly status: number | undefined;
  /** Zitadel's `code` (a gRPC status: 6 already exists, 7 permission denied, ...). */
  readonly code: number | string | undefined;
  /** Zitadel's `message`. */
  readonly zitadelMessage: string | undefined;
  /** Zitadel's `details` (error ids such as `COMMAND-…`). */
  readonly details: readonly unknown[];
  constructor(
    message: string,
    fields: {
      call: ZitadelCall;
      request: string;
      status?: number | undefined;
      code?: number | string | undefined;
      zitadelMessage?: string | undefined;
      details?: readonly unknown[] | undefined;
    },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.call = fields.call;
    this.request = fields.request;
    this.status = fields.status;
    this.code = fields.code;
    this.zitadelMessage = fields.zitadelMessage;
    this.details = fields.details ?? [];
  }

  /** Whether Zitadel said there is no such object (gRPC NOT_FOUND, HTTP 404). */
  get notFound(): boolean {
    return this.status === 404 || this.code === 5 || this.code === "not_found";
  }

  /** Whether Zitadel said the object already exists (gRPC ALREADY_EXISTS, HTTP 409). */
  get alreadyExists(): boolean {
    return this.status === 409 || this.code === 6 || this.code === "already_exists";
  }
}

/** Options of {@link createZitadelManagement}. */
export interface ZitadelManagementOptions {
  /** The instance's URL, e.g. `https://fleet-abc.zitadel.cloud` (the OIDC issuer). */
  baseUrl: string;
  /** The admin's access token (from the device sign-in, or passed in). */
  token: string;
  /**
   * The organisation the devices live in, sent as `x-zitadel-orgid`; without it Zitadel uses
   * the admin's own organisation.
   */
  orgId?: string;
  /**
   * Time limit of each call.
   * @default 10_000
   */
  fetchTimeoutMs?: number;
}

/** Access token format of a machine user's tokens. */
export type AccessTokenType = "ACCESS_TOKEN_TYPE_BEARER" | "ACCESS_TOKEN_TYPE_JWT";

/** A machine user to find or create. */
export interface MachineUserSpec {
  /** Login name, unique in the organisation, e.g. `device-pi-lab-1`. */
  userName: string;
  /** Display name. */
  name: string;
  description?: string;
  /** @default "ACCESS_TOKEN_TYPE_JWT" (the auth callout verifies tokens offline) */
  accessTokenType?: AccessTokenType;
  /** Zitadel's user id, the `sub` of its tokens; Zitadel picks a number when unset. */
  userId?: string;
}

/** A machine user that exists. */
export interface MachineUserRecord {
  userId: string;
  userName: string;
  /** e.g. `USER_STATE_ACTIVE`. */
  state: string | undefined;
}

/** The client's calls. */
export interface ZitadelManagement {
  /**
   * The machine user with exactly this user name, if any.
   * @throws {ZitadelApiError} also when the name belongs to a human user
   */
  findMachineUser(userName: string): Promise<MachineUserRecord | undefined>;
  /**
   * Finds the machine user by `spec.userName`, or creates it. An existing user is left as it
   * is (its name and description are not updated).
   * @throws {ZitadelApiError}
   */
  ensureMachineUser(spec: MachineUserSpec): Promise<{ changed: boolean; userId: string }>;
  /**
   * Adds a JSON key to a machine user. Always a change: Zitadel never returns an existing
   * private key, so the caller must store `keyFile` now.
   * @throws {ZitadelApiError}
   */
  addMachineKey(
    userId: string,
    options?: { expirationDate?: Date },
  ): Promise<{ changed: true; keyId: string; keyFile: string }>;
  /**
   * Removes a machine user's key: Zitadel stops accepting it at once.
   * @returns changed: false when Zitadel has no such key (already removed)
   * @throws {ZitadelApiError}
   */
  removeMachineKey(userId: string, keyId: string): Promise<{ changed: boolean }>;
  /**
   * Grants the user roles of a project. When the user already has a grant on the project,
   * nothing changes (its roles are not compared or updated).
   * @throws {ZitadelApiError}
   */
  ensureUserGrant(
    userId: string,
    grant: { projectId: string; roleKeys: readonly string[] },
  ): Promise<{ changed: boolean; userGrantId: string | undefined }>;
  /**
   * Finds the project named `name`, or creates it with role assertion on. An existing project
   * is left as it is.
   * @throws {ZitadelApiError} also when more than one project has the name
   */
  ensureProject(name: string): Promise<{ changed: boolean; projectId: string }>;
  /**
   * Adds the roles the project lacks; existing ones are left as they are.
   * @returns the keys of the roles added
   * @throws {ZitadelApiError}
   */
  ensureProjectRoles(
    projectId: string,
    roles: readonly ProjectRoleSpec[],
  ): Promise<{ added: string[] }>;
}

/** A project role to have: its key (what tokens carry) and the name people see. */
export interface ProjectRoleSpec {
  key: string;
  displayName: string;
}

/** Creates a {@link ZitadelManagement} client; nothing is fetched until a call. */
export function createZitadelManagement(options: ZitadelManagementOptions): ZitadelManagement {
  return new HttpZitadelManagement(options);
}

// Wire shapes (Zitadel's JSON encodes 64-bit numbers as strings; unknown fields are ignored).

const ErrorBody = z.object({
  code: z.union([z.number(), z.string()]).optional(),
  message: z.string().optional(),
  details: z.array(z.unknown()).optional(),
});

const ListUsersResponse = z.object({
  result: z.array(z.object({
    id: z.string().min(1),
    userName: z.string(),
    state: z.string().optional(),
    machine: z.unknown().optional(),
    human: z.unknown().optional(),
  })).optional(),
});

const AddMachineUserResponse = z.object({ userId: z.string().min(1) });

const AddMachineKeyResponse = z.object({
  keyId: z.string().min(1),
  keyDetails: z.string().min(1),
});

/** The key file `keyDetails` decodes to: what an agent's `key_file` holds. */
export const ZitadelKeyFile = z.object({
  type: z.literal("serviceaccount"),
  keyId: z.string().min(1),
  key: z.string().includes("PRIVATE KEY"),
  userId: z.string().min(1),
});
/** A Zitadel machine key file. */
export type ZitadelKeyFile = z.infer<typeof ZitadelKeyFile>;

const AddUserGrantResponse = z.object({ userGrantId: z.string().min(1) });

const RemoveMachineKeyResponse = z.object({});

const ListProjectsResponse = z.object({
  result: z.array(z.object({ id: z.string().min(1), name: z.string() })).optional(),
});

const AddProjectResponse = z.object({ id: z.string().min(1) });

const ListProjectRolesResponse = z.object({
  result: z.array(z.object({ key: z.string() })).optional(),
});

const AddProjectRoleResponse = z.object({});

class HttpZitadelManagement implements ZitadelManagement {
  readonly #baseUrl: string;
  readonly #token: string;
  readonly #orgId: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ZitadelManagementOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#orgId = options.orgId;
    this.#timeoutMs = options.fetchTimeoutMs ?? 10_000;
  }

  async findMachineUser(userName: string): Promise<MachineUserRecord | undefined> {
    const path = "/management/v1/users/_search";
    const answer = await this.#call(ZitadelCalls.listUsers, path, {
      // Two, so a second match (which EQUALS should never give) is noticed, not ignored.
      query: { limit: 2 },
      queries: [{ userNameQuery: { userName, method: "TEXT_QUERY_METHOD_EQUALS" } }],
    }, ListUsersResponse);
    const matches = (answer.result ?? []).filter((user) => user.userName === userName);
    const [user, second] = matches;
    if (user === undefined) return undefined;
    if (second !== undefined || user.machine === undefined) {
      throw new ZitadelApiError(
        `The user name "${userName}" in Zitadel belongs to ` +
          `${second !== undefined ? "more than one user" : `a human user (id ${user.id})`}, ` +
          `not to one machine user: remove or rename it, or choose another device id`,
        { call: ZitadelCalls.listUsers, request: `POST ${path}`, status: 200 },
      );
    }
    return { userId: user.id, userName: user.userName, state: user.state };
  }

  async ensureMachineUser(spec: MachineUserSpec): Promise<{ changed: boolean; userId: string }> {
    const existing = await this.findMachineUser(spec.userName);
    if (existing !== undefined) return { changed: false, userId: existing.userId };
    try {
      const created = await this.#call(
        ZitadelCalls.addMachineUser,
        "/management/v1/users/machine",
        {
          ...(spec.userId !== undefined ? { userId: spec.userId } : {}),
          userName: spec.userName,
          name: spec.name,
          ...(spec.description !== undefined ? { description: spec.description } : {}),
          accessTokenType: spec.accessTokenType ?? "ACCESS_TOKEN_TYPE_JWT",
        },
        AddMachineUserResponse,
      );
      return { changed: true, userId: created.userId };
    } catch (err) {
      // Another enroll of the same device won the race: use the user it created.
      if (!(err instanceof ZitadelApiError && err.alreadyExists)) throw err;
      const raced = await this.findMachineUser(spec.userName);
      if (raced === undefined) throw err;
      return { changed: false, userId: raced.userId };
    }
  }

  async addMachineKey(
    userId: string,
    options: { expirationDate?: Date } = {},
  ): Promise<{ changed: true; keyId: string; keyFile: string }> {
    const path = `/management/v1/users/${encodeURIComponent(userId)}/keys`;
    const answer = await this.#call(ZitadelCalls.addMachineKey, path, {
      type: "KEY_TYPE_JSON",
      ...(options.expirationDate !== undefined
        ? { expirationDate: options.expirationDate.toISOString() }
        : {}),
    }, AddMachineKeyResponse);
    const unexpected = (why: string) =>
      new ZitadelApiError(
        `Zitadel answered AddMachineKey for user "${userId}" with a key that cannot be used: ` +
          why,
        { call: ZitadelCalls.addMachineKey, request: `POST ${path}`, status: 200 },
      );
    let keyFile: string;
    let parsed: unknown;
    try {
      keyFile = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(answer.keyDetails), (c) => c.charCodeAt(0)),
      );
      parsed = JSON.parse(keyFile);
    } catch {
      throw unexpected("keyDetails is not base64 of a JSON key file");
    }
    const key = ZitadelKeyFile.safeParse(parsed);
    if (!key.success) throw unexpected(z.prettifyError(key.error).replaceAll("\n", "; "));
    if (key.data.userId !== userId || key.data.keyId !== answer.keyId) {
      throw unexpected(`the key file is for user "${key.data.userId}", key "${key.data.keyId}"`);
    }
    return { changed: true, keyId: answer.keyId, keyFile };
  }

  async removeMachineKey(userId: string, keyId: string): Promise<{ changed: boolean }> {
    const path = `/management/v1/users/${encodeURIComponent(userId)}/keys/${
      encodeURIComponent(keyId)
    }`;
    try {
      await this.#call(ZitadelCalls.removeMachineKey, path, undefined, RemoveMachineKeyResponse);
      return { changed: true };
    } catch (err) {
      if (err instanceof ZitadelApiError && err.notFound) return { changed: false };
      throw err;
    }
  }

  async ensureUserGrant(
    userId: string,
    grant: { projectId: string; roleKeys: readonly string[] },
  ): Promise<{ changed: boolean; userGrantId: string | undefined }> {
    const path = `/management/v1/users/${encodeURIComponent(userId)}/grants`;
    try {
      const answer = await this.#call(ZitadelCalls.addUserGrant, path, {
        projectId: grant.projectId,
        roleKeys: [...grant.roleKeys],
      }, AddUserGrantResponse);
      return { changed: true, userGrantId: answer.userGrantId };
    } catch (err) {
      if (err instanceof ZitadelApiError && err.alreadyExists) {
        return { changed: false, userGrantId: undefined };
      }
      throw err;
    }
  }

  async ensureProject(name: string): Promise<{ changed: boolean; projectId: string }> {
    const find = async () => {
      const path = "/management/v1/projects/_search";
      const answer = await this.#call(ZitadelCalls.listProjects, path, {
        query: { limit: 2 },
        queries: [{ nameQuery: { name, method: "TEXT_QUERY_METHOD_EQUALS" } }],
      }, ListProjectsResponse);
      const matches = (answer.result ?? []).filter((project) => project.name === name);
      if (matches.length > 1) {
        throw new ZitadelApiError(
          `More than one Zitadel project is named "${name}": rename the extra ones, or choose ` +
            `another name with --project-name`,
          { call: ZitadelCalls.listProjects, request: `POST ${path}`, status: 200 },
        );
      }
      return matches[0]?.id;
    };
    const existing = await find();
    if (existing !== undefined) return { changed: false, projectId: existing };
    const created = await this.#call(
      ZitadelCalls.addProject,
      "/management/v1/projects",
      { name, projectRoleAssertion: true },
      AddProjectResponse,
    );
    return { changed: true, projectId: created.id };
  }

  async ensureProjectRoles(
    projectId: string,
    roles: readonly ProjectRoleSpec[],
  ): Promise<{ added: string[] }> {
    const base = `/management/v1/projects/${encodeURIComponent(projectId)}/roles`;
    const answer = await this.#call(
      ZitadelCalls.listProjectRoles,
      `${base}/_search`,
      { query: { limit: 1000 } },
      ListProjectRolesResponse,
    );
    const have = new Set((answer.result ?? []).map((role) => role.key));
    const added: string[] = [];
    for (const role of roles) {
      if (have.has(role.key)) continue;
      try {
        await this.#call(ZitadelCalls.addProjectRole, base, {
          roleKey: role.key,
          displayName: role.displayName,
        }, AddProjectRoleResponse);
        added.push(role.key);
      } catch (err) {
        // Added meanwhile by another run: what was wanted is there.
        if (!(err instanceof ZitadelApiError && err.alreadyExists)) throw err;
      }
    }
    return { added };
  }

  /** POSTs `body` as JSON (no body: DELETE) and checks the answer against `schema`. */
  async #call<T>(
    call: ZitadelCall,
    path: string,
    body: Record<string, unknown> | undefined,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const method = body === undefined ? "DELETE" : "POST";
    const request = `${method} ${path}`;
    const url = `${this.#baseUrl}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          accept: "application/json",
          ...(this.#orgId !== undefined ? { "x-zitadel-orgid": this.#orgId } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const why = err instanceof DOMException && err.name === "TimeoutError"
        ? `no answer within ${this.#timeoutMs} ms`
        : err instanceof Error
        ? err.message
        : String(err);
      throw new ZitadelApiError(
        `Cannot reach Zitadel at ${this.#baseUrl} for ${call}: ${why}`,
        { call, request },
        { cause: err },
      );
    }
    const text = await response.text().catch(() => "");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) throw this.#refusal(call, request, response.status, json, text);
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ZitadelApiError(
        `Zitadel answered ${call} (${request}) with an unexpected body: ` +
          z.prettifyError(parsed.error).replaceAll("\n", "; "),
        { call, request, status: response.status },
      );
    }
    return parsed.data;
  }

  #refusal(
    call: ZitadelCall,
    request: string,
    status: number,
    json: unknown,
    text: string,
  ): ZitadelApiError {
    const body = ErrorBody.safeParse(json);
    const error = body.success ? body.data : {};
    const said = error.message ?? (text.slice(0, 200) || "no message");
    const hint = status === 401
      ? ": the admin token is invalid or expired, sign in again"
      : status === 403
      ? `: the admin lacks the permission in organisation ` +
        `${this.#orgId ?? "(the admin's own)"} (Zitadel role ORG_USER_MANAGER or ORG_OWNER)`
      : "";
    return new ZitadelApiError(
      `Zitadel refused ${call} (${request}): ${said} (HTTP ${status})${hint}`,
      {
        call,
        request,
        status,
        code: error.code,
        zitadelMessage: error.message,
        details: error.details,
      },
    );
  }
}
