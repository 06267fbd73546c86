/**
 * `fleet zitadel setup`: what a Fleet installation needs in Zitadel, created when missing and
 * left as it is when present, so running it again changes nothing.
 *
 * @module
 */

import type { ProjectRoleSpec, ZitadelManagement } from "./management.ts";

/** The Fleet project's roles (DESIGN.md §9), with the names people see in Zitadel. */
export const FLEET_PROJECT_ROLES: readonly ProjectRoleSpec[] = [
  { key: "device", displayName: "Fleet device" },
  { key: "operator", displayName: "Fleet operator" },
  { key: "viewer", displayName: "Fleet viewer" },
  { key: "maintainer", displayName: "Fleet maintainer" },
  { key: "admin", displayName: "Fleet admin" },
];

/** Options of {@link setupZitadel}. */
export interface ZitadelSetupOptions {
  management: ZitadelManagement;
  /** The project's name, e.g. `fleet`. */
  projectName: string;
  /** When the machine keys made now expire. */
  keyExpiration: Date;
  /**
   * Add a key to a service user that already exists (Zitadel never hands out an existing
   * private key again, so a lost key is replaced this way). New users always get one.
   */
  newKeys: boolean;
}

/** A service's machine user after {@link setupZitadel}. */
export interface ServiceUser {
  userName: string;
  userId: string;
  /** Whether the user was created now. */
  created: boolean;
  /** The Zitadel key file made now, to store at once; `undefined` when none was made. */
  keyFile: string | undefined;
}

/** What {@link setupZitadel} found or made. */
export interface ZitadelSetupResult {
  projectId: string;
  projectCreated: boolean;
  /** The role keys added now. */
  rolesAdded: string[];
  /** Holds the `operator` role. */
  operator: ServiceUser;
  /** The callout's own identity at Zitadel; it holds no Fleet role. */
  callout: ServiceUser;
}

/**
 * Finds or creates the project (role assertion on), its five roles, and the machine users
 * `fleet-operator` (granted `operator`) and `fleet-callout`, with a key for each user created
 * now (or for every user with `newKeys`).
 *
 * @throws {ZitadelApiError} naming the call Zitadel refused
 */
export async function setupZitadel(options: ZitadelSetupOptions): Promise<ZitadelSetupResult> {
  const { management } = options;
  const project = await management.ensureProject(options.projectName);
  const roles = await management.ensureProjectRoles(project.projectId, FLEET_PROJECT_ROLES);
  const serviceUser = async (
    userName: string,
    description: string,
    roleKeys: string[],
  ): Promise<ServiceUser> => {
    const user = await management.ensureMachineUser({ userName, name: userName, description });
    if (roleKeys.length > 0) {
      await management.ensureUserGrant(user.userId, { projectId: project.projectId, roleKeys });
    }
    const key = user.changed || options.newKeys
      ? await management.addMachineKey(user.userId, { expirationDate: options.keyExpiration })
      : undefined;
    return { userName, userId: user.userId, created: user.changed, keyFile: key?.keyFile };
  };
  return {
    projectId: project.projectId,
    projectCreated: project.changed,
    rolesAdded: roles.added,
    operator: await serviceUser("fleet-operator", "The Fleet operator", ["operator"]),
    callout: await serviceUser("fleet-callout", "The Fleet NATS auth callout", []),
  };
}
