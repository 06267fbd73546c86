/**
 * `fleet device rotate-key`: gives an enrolled device a new key at the identity provider,
 * puts it in place of the old one on the device (one atomic rename: the agent signs with it
 * from its next token on, it re-reads the file before each), proves the new key signs in, and
 * only then revokes the old key at the provider. A failure before the revocation leaves the
 * device on its old key, and the new key revoked again.
 */
import type { Target } from "../adapters/host/target.ts";
import type { IdentityProvider } from "../adapters/zitadel/mod.ts";
import { agentConfigFile, type CredentialsConfig } from "../agent/config.ts";
import {
  CONFIG_PATH,
  DEVICE_KEY_PATH,
  EnrollError,
  readRootFile,
  writeAgentFile,
} from "./steps.ts";
import { errorMessage } from "../core/errors.ts";

/** The agent's OIDC settings, as its config on the device has them. */
export type OidcCredentials = Extract<CredentialsConfig, { type: "oidc" }>;

export interface RotateKeyOptions {
  target: Target;
  deviceId: string;
  identity: IdentityProvider;
  /**
   * Signs in with `keyFile` as the agent will, with the settings of its config.
   * @throws when the provider refuses it
   */
  signIn: (keyFile: string, credentials: OidcCredentials) => Promise<void>;
  /** One line per step, as it finishes. */
  report: (line: string) => void;
}

export interface RotateKeyResult {
  keyId: string;
  /** The superseded key's id, revoked at the provider. */
  revokedKeyId: string;
}

/** The `keyId` of a Zitadel key file. */
function keyIdOf(keyFile: string): string | undefined {
  try {
    const value: unknown = JSON.parse(keyFile);
    const keyId = typeof value === "object" && value !== null
      ? (value as Record<string, unknown>).keyId
      : undefined;
    return typeof keyId === "string" && keyId !== "" ? keyId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @throws {EnrollError} naming the step that failed and what state the device and the provider
 *   are left in.
 */
export async function rotateDeviceKey(o: RotateKeyOptions): Promise<RotateKeyResult> {
  const where = o.target.description;
  const config = await readRootFile(o.target, CONFIG_PATH);
  const credentials = config === undefined
    ? undefined
    : agentConfigFile.parse(config, CONFIG_PATH).nats.credentials;
  if (credentials?.type !== "oidc") {
    throw new EnrollError(
      `${where} has no agent signing in with a key (${
        config === undefined ? `no ${CONFIG_PATH}` : `credentials type ${credentials?.type}`
      }): rotate-key is for devices enrolled with an OIDC identity`,
    );
  }
  const current = await readRootFile(o.target, DEVICE_KEY_PATH);
  const oldKeyId = current === undefined ? undefined : keyIdOf(current);
  if (current === undefined || oldKeyId === undefined) {
    throw new EnrollError(
      `${where} has no ${
        current === undefined ? "device key" : "provider key file (no keyId)"
      } at ${DEVICE_KEY_PATH}: rotate-key replaces the key enroll installed; enroll ${o.deviceId} first`,
    );
  }
  const added = await o.identity.addDeviceKey(o.deviceId);
  o.report(`changed    identity: new key ${added.keyId} at the provider`);
  const undo = async (why: unknown) => {
    await o.identity.removeDeviceKey(o.deviceId, added.keyId);
    return why;
  };
  try {
    await o.signIn(added.keyFile, credentials);
  } catch (err) {
    throw await undo(
      new EnrollError(
        `The new key ${added.keyId} of ${o.deviceId} does not sign in (${
          errorMessage(err)
        }); it was revoked again and the device keeps key ${oldKeyId}`,
        { cause: err },
      ),
    );
  }
  o.report(`unchanged  sign-in: the new key gets a token`);
  try {
    await writeAgentFile(o.target, DEVICE_KEY_PATH, added.keyFile);
  } catch (err) {
    throw await undo(err);
  }
  o.report(`changed    device key: ${DEVICE_KEY_PATH} on ${where} holds key ${added.keyId}`);
  const revoked = await o.identity.removeDeviceKey(o.deviceId, oldKeyId);
  o.report(
    `${revoked ? "changed  " : "unchanged"}  old key: ${oldKeyId} ${
      revoked ? "revoked at the provider" : "was already revoked"
    }`,
  );
  return { keyId: added.keyId, revokedKeyId: oldKeyId };
}
