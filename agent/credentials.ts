/** Turns the agent config's `[nats.credentials]` into a credential source. */
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../adapters/logger.ts";
import {
  type CredentialSource,
  noCredentials,
  userPasswordCredentials,
} from "../adapters/nats/mod.ts";
import { createTokenSource, loadPrivateKey, oidcCredentials } from "../adapters/oidc/mod.ts";
import { agentConfigFile, type CredentialsConfig } from "./config.ts";

/**
 * @param deviceId the device's NATS inbox prefix is derived from it: device permissions
 *   allow replies only on `_INBOX_<deviceId>.>`.
 * @param clock dates the OIDC token and times its renewals (the adapter's system clock when
 *   absent)
 */
export async function credentialsFromConfig(
  c: CredentialsConfig,
  options: { deviceId?: string; configPath: string; log: Logger; clock?: Clock },
): Promise<CredentialSource> {
  switch (c.type) {
    case "none":
      return noCredentials();
    case "userpass": {
      options.log.warn(
        "Using a shared NATS user and password: fine for development, but every device should get its own identity in production",
      );
      const password = c.password ?? (await Deno.readTextFile(c.password_file ?? "")).trim();
      return userPasswordCredentials(c.user, password);
    }
    case "oidc": {
      const key = await loadPrivateKey(c.key_file);
      const clientId = c.client_id ?? key.clientId;
      if (clientId === undefined) {
        throw agentConfigFile.error(
          options.configPath,
          "nats.credentials.client_id: required unless the key file names its user (Zitadel key JSON)",
        );
      }
      const source = createTokenSource({
        issuer: c.issuer,
        clientId,
        privateKeyJwk: key,
        // Read again before each mint: fleet device rotate-key replaces it in place.
        keyFile: c.key_file,
        grant: c.grant,
        logger: options.log,
        ...(c.audience ? { audience: c.audience } : {}),
        ...(c.scope ? { scope: c.scope } : {}),
        ...(c.provider === "zitadel" && c.project_id ? { zitadelProjectId: c.project_id } : {}),
        ...(options.clock ? { clock: options.clock } : {}),
      });
      return oidcCredentials(source, {
        logger: options.log,
        ...(options.deviceId ? { inboxPrefix: `_INBOX_${options.deviceId}` } : {}),
        ...(options.clock ? { clock: options.clock } : {}),
      });
    }
  }
}
