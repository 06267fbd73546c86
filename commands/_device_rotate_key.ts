/**
 * `fleet device rotate-key <deviceId>`: a new key for an enrolled device (enroll/rotate.ts),
 * over SSH like enroll, with the superseded key revoked at the identity provider.
 */
import { Command } from "@commander-js/extra-typings";
import { silentLogger } from "../adapters/logger.ts";
import { printLine } from "../adapters/output.ts";
import { createTokenSource, loadPrivateKey } from "../adapters/oidc/mod.ts";
import { validateIdentifier } from "../core/mod.ts";
import { rotateDeviceKey } from "../enroll/rotate.ts";
import { UsageError } from "./_cli.ts";
import { connectTarget, planSsh, sshOptions } from "./_ssh.ts";
import { identityProvider, planZitadel, ZitadelFlags, zitadelOptions } from "./_zitadel.ts";

export function rotateKeyCommand(): Command<[string]> {
  const command = new Command("rotate-key")
    .description(
      "Give an enrolled device a new key at the identity provider, put it on the device, and revoke the old one",
    )
    .argument("<deviceId>", "the device's id");
  for (const option of [...sshOptions(), ...zitadelOptions()]) command.addOption(option);
  command.addHelpText(
    "after",
    `
The new key is proved to get a token before the device's key file is replaced (atomically);
the agent signs with it from its next token on, without a restart. Only then is the old key
revoked. Keys expire after --key-lifetime days; the agent warns in its log 30 days ahead.

Example:
  fleet device rotate-key pi-lab-7 --target ssh://pi@10.0.0.7 \\
    --zitadel-url https://id.example.com --zitadel-project-id 2810049 \\
    --zitadel-token-file ~/.config/fleet/zitadel-token`,
  );
  command.action(async (deviceId, optionValues) => {
    validateIdentifier("device id", deviceId);
    // Everything is checked before connecting anywhere.
    const ssh = planSsh(optionValues);
    const zitadel = await planZitadel(ZitadelFlags.parse(optionValues));
    if (zitadel === undefined) {
      throw new UsageError("rotate-key needs --zitadel-url (where the device's keys live)");
    }
    const identity = await identityProvider(zitadel);
    await using target = await connectTarget(ssh);
    const result = await rotateDeviceKey({
      target,
      deviceId,
      identity,
      signIn: async (keyFile, credentials) => {
        const key = await loadPrivateKey(keyFile);
        const clientId = credentials.client_id ?? key.clientId;
        if (clientId === undefined) throw new Error("the key file names no user");
        await createTokenSource({
          issuer: credentials.issuer,
          clientId,
          privateKeyJwk: key,
          grant: credentials.grant,
          logger: silentLogger,
          ...(credentials.audience ? { audience: credentials.audience } : {}),
          ...(credentials.scope ? { scope: credentials.scope } : {}),
          ...(credentials.provider === "zitadel" && credentials.project_id
            ? { zitadelProjectId: credentials.project_id }
            : {}),
        }).refresh();
      },
      report: printLine,
    });
    printLine(
      `${deviceId} signs in with key ${result.keyId}; key ${result.revokedKeyId} is revoked`,
    );
  });
  return command;
}
