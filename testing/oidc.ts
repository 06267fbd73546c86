/** Helpers shared by the OIDC adapter tests. */

import assert from "node:assert/strict";
import { silentLogger } from "../adapters/logger.ts";
import { deviceFlowLogin } from "../adapters/oidc/device_flow.ts";
import { sleep } from "../adapters/timers.ts";
import { startTestProvider, type TestProvider } from "./oidc_provider.ts";

/** Awaits `promise`, asserts it rejects with an instance of `type`, and returns the error. */
export async function rejection<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name}, but the promise resolved`);
}

/**
 * A person's sign-in through the provider's device flow (scope `openid fleet`), as the CLI
 * does it: the access token and the ID token the provider returns.
 */
export async function signInWithDeviceFlow(
  idp: TestProvider,
  account: string,
): Promise<{ accessToken: string; idToken: string | undefined }> {
  let signIn: Promise<void> | undefined;
  const token = await deviceFlowLogin({
    issuer: idp.issuer,
    clientId: idp.deviceFlowClientId ?? "fleet-cli",
    scope: "openid fleet",
    audience: idp.audience,
    prompt: (prompt) => {
      signIn = idp.completeDeviceSignIn(prompt.verificationUriComplete ?? "", { account });
    },
    sleep: (ms, signal) => sleep(Math.min(ms, 20), signal),
    logger: silentLogger,
  });
  await signIn;
  return { accessToken: token.accessToken, idToken: token.idToken };
}

/** The resource and the people's client of {@link startProjectProvider}. */
export const PROJECT = "urn:fleet:project";

/**
 * A provider in Zitadel's shape: one project is both the resource (the access tokens' aud)
 * and the people's device-flow client, so a person's ID token has the callout's audience too
 * (and, as with Zitadel's "User Roles Inside ID Token", their roles). Account "alice" is an
 * admin. `accessTokenType: "JWT"` signs access tokens as Zitadel does.
 */
export async function startProjectProvider(
  accessTokenType: "at+jwt" | "JWT" = "at+jwt",
): Promise<TestProvider> {
  const idp = await startTestProvider({
    audience: PROJECT,
    deviceFlow: { clientId: PROJECT },
    accessTokenType,
  });
  idp.addAccount({ id: "alice", roles: ["admin"] });
  return idp;
}
