/**
 * The callout's decision, as a pure function: from the claims of a verified OIDC access
 * token to the NATS user it may become (role, device id, permissions, expiry), or the
 * reason it may not.
 */

import { identifierProblem } from "../core/ids.ts";
import { type UserLimits, userLimits } from "../core/limits.ts";
import { type FleetRole, type NatsPermissions, permissionsForRole } from "../core/permissions.ts";
import { principalOfClaims } from "../core/principal.ts";
import { ZITADEL_PROJECT_ROLES_SCOPE, zitadelProjectAudienceScope } from "../core/zitadel.ts";

/** How claims become a Fleet identity (the `[oidc]` and `[jwt]` settings). */
export interface AuthorizerPolicy {
  /** Claim holding the device id (a string), e.g. `"sub"`. */
  deviceIdClaim: string;
  /**
   * Claim holding the roles: a list of names, one name, or an object whose keys are the
   * names (Zitadel's `urn:zitadel:iam:org:project:roles`). A dotted path such as
   * `realm_access.roles` is followed when no claim has that exact name.
   */
  roleClaim: string;
  /** Removed from the start of the device id claim; a value without it is refused. */
  stripPrefix: string;
  /** OIDC role name → Fleet role. Roles not listed are ignored. */
  roles: Readonly<Record<string, FleetRole>>;
  /** Upper bound of a user JWT's lifetime, in seconds. */
  maxTtlSeconds: number;
}

/** What the authorizer decides about a token. */
export type Decision =
  | {
    kind: "allow";
    role: FleetRole;
    /** Set for the `device` role. */
    deviceId?: string;
    /** Set for every other role: the last token of the command subjects it may publish. */
    principal?: string;
    /** The NATS user's name (device id, or the token's subject for people and services). */
    name: string;
    permissions: NatsPermissions;
    limits: UserLimits;
    /** When the user JWT expires, epoch ms, a whole second: never after the token. */
    expiresAt: number;
  }
  | { kind: "deny"; reason: string };

/** A verified token's content. */
export interface VerifiedClaims {
  claims: Readonly<Record<string, unknown>>;
  /** When the token expires, epoch ms. */
  expiresAt: number;
}

/** Most privileged first: a token with several mapped roles gets the strongest. */
const PRECEDENCE: readonly FleetRole[] = ["admin", "operator", "maintainer", "viewer", "device"];

/**
 * Decides who the bearer of a verified token is on NATS.
 *
 * Refuses, with a reason naming the claim and the value: a missing or malformed role
 * claim, roles none of which maps to a Fleet role, a device without a device id claim, a
 * device id without the configured prefix or that is not an RFC 1123 label (wildcards,
 * dots, whitespace, uppercase...), and a token that has expired or expires within a
 * second. The JWT expires at the token's expiry or after `maxTtlSeconds`, whichever is
 * first, rounded down to a whole second.
 *
 * @param now the current time, epoch ms
 */
export function authorize(
  token: VerifiedClaims,
  policy: AuthorizerPolicy,
  now: number,
): Decision {
  if (!Number.isFinite(token.expiresAt) || token.expiresAt <= now) {
    return deny("the token has expired");
  }
  const expiresAt = Math.floor(
    Math.min(token.expiresAt, now + policy.maxTtlSeconds * 1000) / 1000,
  ) * 1000;
  if (expiresAt <= now) return deny("the token expires within a second");

  const roles = roleNames(token.claims, policy.roleClaim);
  if (typeof roles === "string") return deny(roles);
  const mapped = new Set(
    roles.map((r) => Object.hasOwn(policy.roles, r) ? policy.roles[r] : undefined),
  );
  const role = PRECEDENCE.find((r) => mapped.has(r));
  if (role === undefined) {
    const known = Object.keys(policy.roles).map((r) => JSON.stringify(r)).join(", ");
    const found = roles.length === 0
      ? "no roles"
      : `the roles ${roles.map((r) => JSON.stringify(r)).join(", ")}`;
    return deny(
      `the token's "${policy.roleClaim}" claim has ${found}, none of which is a Fleet role ` +
        `(configured: ${known})`,
    );
  }

  if (role !== "device") {
    const principal = principalOfClaims(token.claims);
    if (principal === undefined) {
      return deny(`the token has no "iss" with a "sub" (or "client_id") claim to name its bearer`);
    }
    return {
      kind: "allow",
      role,
      principal,
      name: subjectName(token.claims, policy.deviceIdClaim),
      permissions: permissionsForRole(role, principal),
      limits: userLimits(role),
      expiresAt,
    };
  }

  const claim = policy.deviceIdClaim;
  const raw = Object.hasOwn(token.claims, claim) ? token.claims[claim] : undefined;
  if (raw === undefined) {
    return deny(`the token has no "${claim}" claim to take the device id from`);
  }
  if (typeof raw !== "string") {
    return deny(`the token's "${claim}" claim is not a string (${describe(raw)})`);
  }
  let deviceId = raw;
  if (policy.stripPrefix !== "") {
    if (!raw.startsWith(policy.stripPrefix)) {
      return deny(
        `the device id claim "${claim}" is ${JSON.stringify(raw)}, which does not start ` +
          `with the prefix ${JSON.stringify(policy.stripPrefix)}`,
      );
    }
    deviceId = raw.slice(policy.stripPrefix.length);
  }
  const problem = identifierProblem(deviceId);
  if (problem !== undefined) {
    return deny(
      `invalid device id ${JSON.stringify(deviceId)} (from the "${claim}" claim): ${problem}; ` +
        `it must be an RFC 1123 label (lowercase a-z, 0-9 and '-', at most 63)`,
    );
  }
  return {
    kind: "allow",
    role,
    deviceId,
    name: deviceId,
    permissions: permissionsForRole(role, deviceId),
    limits: userLimits(role),
    expiresAt,
  };
}

function deny(reason: string): Decision {
  return { kind: "deny", reason };
}

/** The role names in the claim, or why there are none to read. */
function roleNames(claims: Readonly<Record<string, unknown>>, claim: string): string[] | string {
  const value = lookup(claims, claim);
  if (value === undefined) {
    // Zitadel leaves its roles claims out unless the token request names both scopes.
    const zitadel = claim.startsWith("urn:zitadel:")
      ? `; a Zitadel client must request the scope "${ZITADEL_PROJECT_ROLES_SCOPE}" and its ` +
        `project as audience ("${zitadelProjectAudienceScope("<project id>")}"): in the ` +
        `agent's [nats.credentials] set provider = "zitadel" and project_id, for the CLI and ` +
        `the operator --oidc-provider zitadel --oidc-project-id`
      : "";
    return `the token has no "${claim}" claim, so it carries no roles${zitadel}`;
  }
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) {
    if (value.every((v): v is string => typeof v === "string")) return value;
    return `the token's "${claim}" claim is a list with non-string entries`;
  }
  if (typeof value === "object" && value !== null) return Object.keys(value);
  return `the token's "${claim}" claim is not a list of roles (${describe(value)})`;
}

/** The claim `name`, or, when absent and `name` has dots, the nested claim at that path. */
function lookup(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!name.includes(".")) return undefined;
  let value: unknown = claims;
  for (const part of name.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const record = value as Record<string, unknown>;
    if (!Object.hasOwn(record, part)) return undefined;
    value = record[part];
  }
  return value;
}

/** A name for a person's or service's user: the id claim, else `sub`, else `client_id`. */
function subjectName(claims: Readonly<Record<string, unknown>>, idClaim: string): string {
  for (const claim of [idClaim, "sub", "client_id"]) {
    const value = Object.hasOwn(claims, claim) ? claims[claim] : undefined;
    if (typeof value === "string" && value !== "") return value;
  }
  return "unnamed";
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value)}`;
}
