/**
 * The identity a device gets in the OIDC provider at enrollment, behind a small interface
 * so `fleet device enroll` does not depend on Zitadel, and Zitadel's implementation of it.
 *
 * @module
 */

import type { ZitadelManagement } from "./management.ts";

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
  /** When new keys expire; Zitadel's default (far future) when unset. */
  keyExpiration?: Date;
}

/** Creates the Zitadel {@link IdentityProvider}. */
export function createZitadelIdentityProvider(options: ZitadelIdentityOptions): IdentityProvider {
  const roleKeys = options.roleKeys ?? ["device"];
  const prefix = options.userNamePrefix ?? "device-";
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
        ? await options.management.addMachineKey(
          user.userId,
          options.keyExpiration !== undefined ? { expirationDate: options.keyExpiration } : {},
        )
        : undefined;
      return {
        changed: user.changed || key !== undefined || grant.changed,
        clientId: user.userId,
        ...(key !== undefined ? { keyFile: key.keyFile } : {}),
      };
    },
  };
}
