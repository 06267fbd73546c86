/**
 * The Zitadel flags `device enroll`, `vm provision` and `device rotate-key` share: where the
 * devices' identities live, how the admin signs in there (a token read from a file or standard
 * input, never from the command line, or a sign-in with a code), and how long device keys live.
 */
import { Option } from "@commander-js/extra-typings";
import * as z from "zod";
import { printLine } from "../adapters/output.ts";
import { deviceFlowLogin } from "../adapters/oidc/mod.ts";
import {
  createZitadelIdentityProvider,
  createZitadelManagement,
  type IdentityProvider,
} from "../adapters/zitadel/mod.ts";
import { UsageError } from "./_cli.ts";
import { readSecret } from "./_secret.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

function days(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) {
    throw new UsageError(
      `--key-lifetime must be a whole number of days from 1 to 36500, got "${text}"`,
    );
  }
  return n;
}

/** The Zitadel flags, for `command.addOption()`. */
export function zitadelOptions(): Option[] {
  return [
    new Option("--zitadel-url <url>", "create the device's identity in this Zitadel instance")
      .env("FLEET_ZITADEL_URL"),
    new Option("--zitadel-project-id <id>", "the Zitadel project whose `device` role devices get")
      .env("FLEET_ZITADEL_PROJECT_ID"),
    new Option("--zitadel-org-id <id>", "the organisation devices live in (default: the admin's)")
      .env("FLEET_ZITADEL_ORG_ID"),
    new Option(
      "--zitadel-token-file <path>",
      "file holding the admin's access token, - for standard input (default: sign in)",
    ).env("FLEET_ZITADEL_TOKEN_FILE"),
    new Option("--zitadel-client-id <id>", "the CLI's public client, for signing in")
      .env("FLEET_ZITADEL_CLIENT_ID"),
    new Option("--key-lifetime <days>", "how long a new device key is valid at the provider")
      .argParser(days).default(365).env("FLEET_KEY_LIFETIME"),
  ];
}

const optional = z.string().optional();

/** The values of {@link zitadelOptions} as commander hands them over. */
export const ZitadelFlags = z.object({
  zitadelUrl: optional,
  zitadelProjectId: optional,
  zitadelOrgId: optional,
  zitadelTokenFile: optional,
  zitadelClientId: optional,
  keyLifetime: z.number(),
});
export type ZitadelFlags = z.infer<typeof ZitadelFlags>;

export interface ZitadelPlan {
  url: string;
  projectId: string;
  orgId: string | undefined;
  /** The admin's token, or the public client to sign in with. */
  auth: { token: string } | { clientId: string };
  keyLifetimeDays: number;
}

/**
 * The Zitadel flags, checked, the token read; undefined without --zitadel-url.
 * @throws {UsageError} naming the missing flag.
 */
export async function planZitadel(flags: ZitadelFlags): Promise<ZitadelPlan | undefined> {
  if (flags.zitadelUrl === undefined) return undefined;
  if (flags.zitadelProjectId === undefined) {
    throw new UsageError("--zitadel-url needs --zitadel-project-id");
  }
  const auth = flags.zitadelTokenFile !== undefined
    ? { token: await readSecret("--zitadel-token-file", flags.zitadelTokenFile) }
    : flags.zitadelClientId !== undefined
    ? { clientId: flags.zitadelClientId }
    : undefined;
  if (!auth) {
    throw new UsageError(
      "--zitadel-url needs --zitadel-token-file, or --zitadel-client-id to sign in with a code",
    );
  }
  return {
    url: flags.zitadelUrl,
    projectId: flags.zitadelProjectId,
    orgId: flags.zitadelOrgId,
    auth,
    keyLifetimeDays: flags.keyLifetime,
  };
}

/** Signs the admin in (when no token was given) and returns the device identity provider. */
export async function identityProvider(zitadel: ZitadelPlan): Promise<IdentityProvider> {
  const token = "token" in zitadel.auth
    ? zitadel.auth.token
    : await signIn(zitadel.url, zitadel.auth.clientId);
  return createZitadelIdentityProvider({
    management: createZitadelManagement({
      baseUrl: zitadel.url,
      token,
      ...(zitadel.orgId ? { orgId: zitadel.orgId } : {}),
    }),
    projectId: zitadel.projectId,
    // Dated when each key is made, not when the flags were read.
    keyExpiration: () => new Date(Date.now() + zitadel.keyLifetimeDays * DAY_MS),
  });
}

/** The admin signs in with a code on another device (RFC 8628); returns the access token. */
export async function signIn(issuer: string, clientId: string): Promise<string> {
  const token = await deviceFlowLogin({
    issuer,
    clientId,
    // The audience scope lets the token call Zitadel's own Management API.
    scope: "openid urn:zitadel:iam:org:project:id:zitadel:aud",
    prompt: (p) =>
      printLine(
        `To let Fleet manage the device's identity, open ${
          p.verificationUriComplete ?? p.verificationUri
        } and enter the code ${p.userCode}`,
      ),
  });
  return token.accessToken;
}
