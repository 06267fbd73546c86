/**
 * The reserved scopes a Zitadel client asks for to get its project roles: Zitadel issues a
 * machine user's access token without any roles unless the request names both.
 */

/** Puts the bearer's roles in each project of the token's audience into the token. */
export const ZITADEL_PROJECT_ROLES_SCOPE = "urn:zitadel:iam:org:projects:roles";

/** Puts project `projectId` into the token's audience (`aud`). */
export function zitadelProjectAudienceScope(projectId: string): string {
  return `urn:zitadel:iam:org:project:id:${projectId}:aud`;
}

/**
 * The scope a Fleet client asks Zitadel for: `openid`, the project as audience, its roles, and
 * whatever else `scope` names (each once).
 */
export function zitadelScope(projectId: string, scope?: string): string {
  const scopes = ["openid", zitadelProjectAudienceScope(projectId), ZITADEL_PROJECT_ROLES_SCOPE];
  for (const extra of scope?.split(" ") ?? []) {
    if (extra !== "" && !scopes.includes(extra)) scopes.push(extra);
  }
  return scopes.join(" ");
}
