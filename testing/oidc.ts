/** Helpers shared by the OIDC adapter tests. */

import assert from "node:assert/strict";
import { silentLogger } from "../adapters/logger.ts";
import { deviceFlowLogin } from "../adapters/oidc/device_flow.ts";
import { sleep } from "../adapters/timers.ts";
import type { TestProvider } from "./oidc_provider.ts";

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
