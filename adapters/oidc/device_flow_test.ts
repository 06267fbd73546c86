import assert from "node:assert/strict";
import { silentLogger } from "../logger.ts";
import { sleep as abortableSleep } from "../timers.ts";
import {
  DeviceFlowError,
  DeviceFlowErrorCodes,
  deviceFlowLogin,
  type DeviceFlowOptions,
  type DeviceFlowPrompt,
} from "./device_flow.ts";
import {
  startTestProvider,
  type TestProvider,
  ZITADEL_ROLES_CLAIM,
} from "../../testing/oidc_provider.ts";
import { createTokenVerifier } from "./verifier.ts";
import { rejection } from "../../testing/oidc.ts";

/** Waits at most 20 ms whatever the interval, so tests do not sit out 5 s polls. */
function quickSleep(ms: number, signal: AbortSignal): Promise<void> {
  return abortableSleep(Math.min(ms, 20), signal);
}

async function providerWithAdmin(
  deviceFlow: NonNullable<Parameters<typeof startTestProvider>[0]>["deviceFlow"] = {},
): Promise<TestProvider> {
  const idp = await startTestProvider({ deviceFlow });
  idp.addAccount({ id: "alice", roles: ["admin"] });
  return idp;
}

function options(idp: TestProvider, overrides: Partial<DeviceFlowOptions>): DeviceFlowOptions {
  return {
    issuer: idp.issuer,
    clientId: idp.deviceFlowClientId ?? "fleet-cli",
    scope: "fleet",
    audience: idp.audience,
    prompt: () => {},
    sleep: quickSleep,
    logger: silentLogger,
    ...overrides,
  };
}

/** The complete verification URI the prompt was given (the test provider always sends one). */
function completeUri(prompt: DeviceFlowPrompt): string {
  assert.ok(prompt.verificationUriComplete !== undefined);
  return prompt.verificationUriComplete;
}

Deno.test("deviceFlowLogin() returns a token the verifier accepts once the admin approves", async () => {
  await using idp = await providerWithAdmin();
  let shown: DeviceFlowPrompt | undefined;
  let signIn: Promise<void> | undefined;
  const token = await deviceFlowLogin(options(idp, {
    prompt: (prompt) => {
      shown = prompt;
      signIn = idp.completeDeviceSignIn(completeUri(prompt), { account: "alice" });
    },
  }));
  await signIn;
  assert.ok(shown !== undefined);
  assert.match(shown.userCode, /^[A-Z]{4}-[A-Z]{4}$/);
  assert.equal(shown.verificationUri, `${idp.issuer}/device`);
  assert.ok(completeUri(shown).includes(encodeURIComponent(shown.userCode)));
  assert.ok(shown.expiresAt > Date.now());

  const verifier = createTokenVerifier({
    issuer: idp.issuer,
    audience: idp.audience,
    logger: silentLogger,
  });
  const { claims, expiresAt } = await verifier.verify(token.accessToken);
  assert.equal(claims.sub, "alice");
  assert.deepEqual(claims.roles, ["admin"]);
  assert.deepEqual(claims[ZITADEL_ROLES_CLAIM], { admin: { "fleet-org": "fleet.localhost" } });
  assert.equal(token.tokenType, "Bearer");
  assert.equal(token.scope, "fleet");
  assert.ok(token.expiresAt !== undefined && Math.abs(token.expiresAt - expiresAt) < 5_000);
});

for (const decision of ["abort", "deny"] as const) {
  Deno.test(`deviceFlowLogin() fails with access_denied when the admin refuses (${decision})`, async () => {
    await using idp = await providerWithAdmin();
    let signIn: Promise<void> | undefined;
    const err = await rejection(
      deviceFlowLogin(options(idp, {
        prompt: (prompt) => {
          signIn = idp.completeDeviceSignIn(completeUri(prompt), { account: "alice", decision });
        },
      })),
      DeviceFlowError,
    );
    await signIn;
    assert.equal(err.code, DeviceFlowErrorCodes.denied);
    assert.equal(err.error, "access_denied");
    assert.match(err.message, /was denied at http:\/\/127\.0\.0\.1:\d+/);
  });
}

Deno.test("deviceFlowLogin() fails with expired_token when the provider says the code expired", async () => {
  await using idp = await providerWithAdmin({ codeTtlSeconds: 1 });
  const frozen = Date.now();
  let userCode = "";
  const err: DeviceFlowError = await rejection(
    deviceFlowLogin(options(idp, {
      prompt: (prompt) => {
        userCode = prompt.userCode;
      },
      // A frozen clock keeps the local deadline from firing first: the provider decides.
      now: () => frozen,
      sleep: (_ms, signal) => abortableSleep(300, signal),
    })),
    DeviceFlowError,
  );
  assert.equal(err.code, DeviceFlowErrorCodes.expired);
  assert.equal(err.error, "expired_token");
  assert.ok(err.message.includes(userCode), err.message);
  assert.match(err.message, /run the command again for a new code/);
});

Deno.test("deviceFlowLogin() stops polling at the code's expires_in deadline", async () => {
  await using idp = await providerWithAdmin();
  let skew = 0;
  const err = await rejection(
    deviceFlowLogin(options(idp, {
      prompt: () => {
        skew = 601_000; // the admin walked away for longer than the code's 600 s
      },
      now: () => Date.now() + skew,
    })),
    DeviceFlowError,
  );
  assert.equal(err.code, DeviceFlowErrorCodes.expired);
  assert.equal(err.error, undefined, "decided locally, without asking the provider");
});

Deno.test("deviceFlowLogin() waits the announced interval and 5 s more after slow_down", async () => {
  await using idp = await providerWithAdmin({ intervalSeconds: 1 });
  const waits: number[] = [];
  let uri = "";
  const token = await deviceFlowLogin(options(idp, {
    prompt: (prompt) => {
      uri = completeUri(prompt);
    },
    sleep: async (ms, signal) => {
      waits.push(ms);
      // Polls 1 and 2 go out back to back: the second is too soon and earns slow_down. Then
      // the admin approves, and a real wait past the provider's 1 s interval precedes poll 3.
      if (waits.length === 3) {
        await idp.completeDeviceSignIn(uri, { account: "alice" });
        await abortableSleep(1_100, signal);
      }
    },
  }));
  assert.deepEqual(waits, [1_000, 1_000, 6_000]);
  assert.ok(token.accessToken.length > 0);
});

Deno.test("deviceFlowLogin() ends with aborted when the signal aborts while polling", async () => {
  await using idp = await providerWithAdmin();
  const controller = new AbortController();
  const err = await rejection(
    deviceFlowLogin(options(idp, {
      prompt: () => {
        setTimeout(() => controller.abort(), 50);
      },
      sleep: abortableSleep, // the real 5 s wait, cut short by the abort
      signal: controller.signal,
    })),
    DeviceFlowError,
  );
  assert.equal(err.code, DeviceFlowErrorCodes.aborted);
  assert.match(err.message, /was cancelled/);
});

Deno.test("deviceFlowLogin() says when the provider offers no device sign-in", async () => {
  await using idp = await startTestProvider();
  const err = await rejection(
    deviceFlowLogin(options(idp, { clientId: "fleet-cli" })),
    DeviceFlowError,
  );
  assert.equal(err.code, DeviceFlowErrorCodes.unsupported);
  assert.match(err.message, /no device_authorization_endpoint.*pass an access token instead/);
});

Deno.test("deviceFlowLogin() reports a client the provider does not know", async () => {
  await using idp = await providerWithAdmin();
  let prompted = false;
  const err = await rejection(
    deviceFlowLogin(options(idp, {
      clientId: "no-such-client",
      prompt: () => {
        prompted = true;
      },
    })),
    DeviceFlowError,
  );
  assert.equal(prompted, false);
  assert.equal(err.code, DeviceFlowErrorCodes.refused);
  assert.equal(err.error, "invalid_client");
  assert.match(err.message, /check that client "no-such-client" exists/);
});

Deno.test("deviceFlowLogin() reports an unreachable provider", async () => {
  const idp = await providerWithAdmin();
  await idp.stop();
  const err = await rejection(deviceFlowLogin(options(idp, {})), DeviceFlowError);
  assert.equal(err.code, DeviceFlowErrorCodes.unreachable);
  assert.match(err.message, /^Cannot sign in at http:\/\/127\.0\.0\.1:\d+: cannot reach/);
});
