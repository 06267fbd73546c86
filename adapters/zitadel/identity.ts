/**
 * The identity a device gets in the OIDC provider at enrollment, behind a small interface
 * so `fleet device enroll` does not depend on Zitadel, and Zitadel's implementation of it.
 *
 * @module
 */

import { ZitadelApiError, ZitadelCalls, type ZitadelManagement } from "./management.ts";

/** What {@link IdentityProvider.ensureDeviceIdentity} did. */
export interface DeviceIdentity {
  /** Whether anything was created (user, key or role grant). */
  changed: boolean;
  /** The device's client id at the provider (Zitadel: the machine user's id, its tokens' `sub`). */
  clientId: string;
  /**
   * The new key file (Zitadel machine-key JSON, what the agent's `key_file` holds), only when a
   * key was created in this call.
   */
  keyFile?: string;
}

/**
 * Creates a device's identity in the OIDC provider, idempotently.
 *
 * A private key can be had only when it is created: the provider keeps the public half and
 * never returns an existing key. So a new key comes back only when the identity is created
 * (or when asked for with `newKey`), and a repeated enrollment returns none: the enroll step
 * must then keep the key file already on the device, and must write a returned key to the
 * device before reporting success, since it cannot be fetched again. A device without a usable
 * key file (lost, or an earlier enroll failed after creating the user) needs `newKey`.
 */
export interface IdentityProvider {
  /**
   * Ensures the device has a machine identity with the device role.
   * @param deviceId the device's id
   * @param options.newKey add a key even when the identity exists (the device lost its key file)
   */
  ensureDeviceIdentity(
    deviceId: string,
    options?: { newKey?: boolean },
  ): Promise<DeviceIdentity>;
  /**
   * Adds a key to the device's existing identity (rotation), expiring like enrollment's.
   * @returns the key file and its id
   */
  addDeviceKey(deviceId: string): Promise<{ keyId: string; keyFile: string }>;
  /**
   * Revokes one of the device's keys: the provider refuses it from now on.
   * @returns false when the provider had no such key (already revoked)
   */
  removeDeviceKey(deviceId: string, keyId: string): Promise<boolean>;
}

/** Options of {@link createZitadelIdentityProvider}. */
export interface ZitadelIdentityOptions {
  /** The Management API client, signed in as the admin. */
  management: ZitadelManagement;
  /** The Zitadel project whose roles the auth callout reads. */
  projectId: string;
  /** @default ["device"] */
  roleKeys?: readonly string[];
  /**
   * Prefix of the machine user's name and id: device `pi-lab-1` is user `device-pi-lab-1`,
   * which the callout's `strip_prefix` turns back into the device id.
   * @default "device-"
   */
  userNamePrefix?: string;
  /** When new keys expire (asked at each new key); Zitadel's default (far future) when unset. */
  keyExpiration?: Date | (() => Date);
}

/** Creates the Zitadel {@link IdentityProvider}. */
export function createZitadelIdentityProvider(options: ZitadelIdentityOptions): IdentityProvider {
  const roleKeys = options.roleKeys ?? ["device"];
  const prefix = options.userNamePrefix ?? "device-";
  const expiration = options.keyExpiration;
  const keyOptions = () =>
    expiration === undefined
      ? {}
      : { expirationDate: typeof expiration === "function" ? expiration() : expiration };
  const userIdOf = async (deviceId: string): Promise<string> => {
    const userName = `${prefix}${deviceId}`;
    const user = await options.management.findMachineUser(userName);
    if (user === undefined) {
      throw new ZitadelApiError(
        `Device ${deviceId} has no identity in Zitadel (no machine user "${userName}"): ` +
          `enroll it first`,
        { call: ZitadelCalls.listUsers, request: "POST /management/v1/users/_search" },
      );
    }
    return user.userId;
  };
  return {
    async ensureDeviceIdentity(deviceId, { newKey = false } = {}) {
      const userName = `${prefix}${deviceId}`;
      const user = await options.management.ensureMachineUser({
        userName,
        // The id is the name so the token's `sub` names the device (Zitadel would pick a number).
        userId: userName,
        name: deviceId,
        description: `Fleet device ${deviceId}`,
        accessTokenType: "ACCESS_TOKEN_TYPE_JWT",
      });
      const grant = await options.management.ensureUserGrant(user.userId, {
        projectId: options.projectId,
        roleKeys,
      });
      // The key last: a key is returned only once, so no later step may fail and lose it.
      const key = user.changed || newKey
        ? await options.management.addMachineKey(user.userId, keyOptions())
        : undefined;
      return {
        changed: user.changed || key !== undefined || grant.changed,
        clientId: user.userId,
        ...(key !== undefined ? { keyFile: key.keyFile } : {}),
      };
    },
    async addDeviceKey(deviceId) {
      const key = await options.management.addMachineKey(await userIdOf(deviceId), keyOptions());
      return { keyId: key.keyId, keyFile: key.keyFile };
    },
    async removeDeviceKey(deviceId, keyId) {
      return (await options.management.removeMachineKey(await userIdOf(deviceId), keyId)).changed;
    },
  };
}
