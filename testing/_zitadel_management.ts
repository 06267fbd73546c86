/**
 * The part of Zitadel's Management API v1 that `fleet device enroll` and `rotate-key` call,
 * served by the test provider over the same users its token endpoint knows: ListUsers,
 * AddMachineUser, AddUserGrant, AddMachineKey (with `expirationDate`) and RemoveMachineKey,
 * with Zitadel's paths, bodies, error codes and key file. A key removed or past its
 * expiration date no longer signs in, as in Zitadel.
 *
 * Paths and shapes follow zitadel/zitadel proto/zitadel/management.proto (the grpc-gateway
 * mapping under /management/v1); errors carry the gRPC code (5 not found, 6 already exists,
 * 3 invalid argument, 16 unauthenticated) as Zitadel's JSON does.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { KeyObject } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK } from "jose";

/** A machine user's key: its public half is what the provider verifies assertions with. */
export interface MachineKeyRecord {
  publicJwk: JWK;
  /** Epoch ms; undefined = never (Zitadel's far future). */
  expiresAt: number | undefined;
}

/** The users the management API and the token endpoint share. */
export interface ManagedUser {
  clientId: string;
  deviceId: string;
  roles: string[];
  userName: string;
  name: string;
  description: string;
  keys: Map<string, MachineKeyRecord>;
  /** Projects the user has a grant on. */
  grantedProjects: Set<string>;
}

/** A project as the emulation keeps it: its name and its roles (key → display name). */
export interface ManagedProject {
  id: string;
  name: string;
  roles: Map<string, string>;
}

/** Zitadel's default key expiration when none is asked for. */
const FAR_FUTURE = "9999-12-31T23:59:59Z";

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function failure(res: ServerResponse, status: number, code: number, message: string): void {
  send(res, status, { code, message, details: [] });
}

let lastId = BigInt(Date.now()) * 1000n;
/** Zitadel ids are 18-digit numbers (snowflakes). */
function newId(): string {
  lastId += 1n;
  return String(lastId);
}

function details() {
  return { sequence: "1", changeDate: new Date().toISOString(), resourceOwner: "fleet-org" };
}

/** An RSA key the way Zitadel hands it out: PKCS#1 PEM, and its public half as a JWK. */
async function rsaKeyPair(): Promise<{ pem: string; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = KeyObject.from(privateKey).export({ type: "pkcs1", format: "pem" }).toString();
  return { pem, publicJwk: await exportJWK(publicKey) };
}

/** Serves `/management/v1/...` for `users` and `projects`, authenticated with `Bearer <token>`. */
export async function serveManagement(
  users: Map<string, ManagedUser>,
  projects: Map<string, ManagedProject>,
  token: string,
  req: IncomingMessage,
  res: ServerResponse,
  body: string,
): Promise<void> {
  if (req.headers.authorization !== `Bearer ${token}`) {
    failure(res, 401, 16, "Errors.Token.Invalid (AUTH-7fs1e)");
    return;
  }
  const path = new URL(req.url ?? "/", "http://x").pathname.replace(/^\/management\/v1/, "");
  const json = body === "" ? {} : JSON.parse(body) as Record<string, unknown>;
  if (path.startsWith("/projects")) {
    serveProjects(projects, req.method ?? "GET", path, json, res);
    return;
  }
  const userPath = /^\/users\/([^/]+)(\/keys(?:\/([^/]+))?|\/grants)?$/.exec(path);
  if (req.method === "POST" && path === "/users/_search") {
    const queries = (json.queries ?? []) as { userNameQuery?: { userName?: string } }[];
    const name = queries[0]?.userNameQuery?.userName;
    const found = [...users.values()].filter((u) => name === undefined || u.userName === name);
    send(res, 200, {
      details: { totalResult: String(found.length) },
      result: found.map((u) => ({
        id: u.clientId,
        state: "USER_STATE_ACTIVE",
        userName: u.userName,
        machine: {
          name: u.name,
          description: u.description,
          accessTokenType: "ACCESS_TOKEN_TYPE_JWT",
        },
      })),
    });
    return;
  }
  if (req.method === "POST" && path === "/users/machine") {
    const userName = String(json.userName ?? "");
    const userId = typeof json.userId === "string" ? json.userId : newId();
    if ([...users.values()].some((u) => u.userName === userName) || users.has(userId)) {
      failure(res, 409, 6, "User already exists (COMMAND-k2LQx)");
      return;
    }
    users.set(userId, {
      clientId: userId,
      deviceId: userId,
      roles: [],
      userName,
      name: String(json.name ?? userName),
      description: String(json.description ?? ""),
      keys: new Map(),
      grantedProjects: new Set(),
    });
    send(res, 200, { userId, details: details() });
    return;
  }
  const user = userPath ? users.get(decodeURIComponent(userPath[1]!)) : undefined;
  if (userPath === null || user === undefined) {
    failure(res, 404, 5, "User could not be found (COMMAND-3M9sd)");
    return;
  }
  if (req.method === "POST" && userPath[2] === "/grants") {
    const projectId = String(json.projectId ?? "");
    if (user.grantedProjects.has(projectId)) {
      failure(res, 409, 6, "User grant already exists (COMMAND-x7Qk2)");
      return;
    }
    user.grantedProjects.add(projectId);
    for (const role of (json.roleKeys ?? []) as string[]) {
      if (!user.roles.includes(role)) user.roles.push(role);
    }
    send(res, 200, { userGrantId: newId(), details: details() });
    return;
  }
  if (req.method === "POST" && userPath[2] === "/keys") {
    const expirationDate = typeof json.expirationDate === "string"
      ? json.expirationDate
      : FAR_FUTURE;
    const expiresAt = Date.parse(expirationDate);
    if (Number.isNaN(expiresAt) || expiresAt <= Date.now()) {
      failure(res, 400, 3, "Expiration date must be in the future (AUTHN-dv3t5)");
      return;
    }
    const keyId = newId();
    const { pem, publicJwk } = await rsaKeyPair();
    user.keys.set(keyId, {
      publicJwk: { ...publicJwk, kid: keyId, alg: "RS256", use: "sig" },
      expiresAt: json.expirationDate === undefined ? undefined : expiresAt,
    });
    const keyFile = JSON.stringify({
      type: "serviceaccount",
      keyId,
      key: pem,
      expirationDate,
      userId: user.clientId,
    });
    send(res, 200, { keyId, keyDetails: btoa(keyFile), details: details() });
    return;
  }
  if (req.method === "DELETE" && userPath[3] !== undefined) {
    if (!user.keys.delete(decodeURIComponent(userPath[3]))) {
      failure(res, 404, 5, "Machine key not found (COMMAND-4m77G)");
      return;
    }
    send(res, 200, { details: details() });
    return;
  }
  failure(res, 404, 5, `Not found: ${req.method} ${path}`);
}

/** ListProjects, AddProject, ListProjectRoles and AddProjectRole. */
function serveProjects(
  projects: Map<string, ManagedProject>,
  method: string,
  path: string,
  json: Record<string, unknown>,
  res: ServerResponse,
): void {
  if (method === "POST" && path === "/projects/_search") {
    const queries = (json.queries ?? []) as { nameQuery?: { name?: string } }[];
    const name = queries[0]?.nameQuery?.name;
    const found = [...projects.values()].filter((p) => name === undefined || p.name === name);
    send(res, 200, {
      details: { totalResult: String(found.length) },
      result: found.map((p) => ({ id: p.id, name: p.name, state: "PROJECT_STATE_ACTIVE" })),
    });
    return;
  }
  if (method === "POST" && path === "/projects") {
    const id = newId();
    projects.set(id, { id, name: String(json.name ?? ""), roles: new Map() });
    send(res, 200, { id, details: details() });
    return;
  }
  const rolesPath = /^\/projects\/([^/]+)\/roles(\/_search)?$/.exec(path);
  const project = rolesPath ? projects.get(decodeURIComponent(rolesPath[1]!)) : undefined;
  if (method !== "POST" || rolesPath === null || project === undefined) {
    failure(res, 404, 5, "Project not found (PROJECT-3M9sd)");
    return;
  }
  if (rolesPath[2] !== undefined) {
    send(res, 200, {
      details: { totalResult: String(project.roles.size) },
      result: [...project.roles].map(([key, displayName]) => ({ key, displayName, group: "" })),
    });
    return;
  }
  const key = String(json.roleKey ?? "");
  if (project.roles.has(key)) {
    failure(res, 409, 6, "Project role already exists (COMMAND-HbtTw)");
    return;
  }
  project.roles.set(key, String(json.displayName ?? key));
  send(res, 200, { details: details() });
}

/** The keys a user may sign in with now: the ones not removed and not expired. */
export function liveKeys(user: ManagedUser, now: number): JWK[] {
  return [...user.keys.values()]
    .filter((k) => k.expiresAt === undefined || k.expiresAt > now)
    .map((k) => ({ ...k.publicJwk }));
}
