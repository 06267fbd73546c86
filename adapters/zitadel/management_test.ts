import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { fileURLToPath } from "node:url";
import { loadPrivateKey } from "../oidc/token_source.ts";
import { createZitadelIdentityProvider } from "./identity.ts";
import {
  createZitadelManagement,
  ZitadelApiError,
  ZitadelCalls,
  type ZitadelManagement,
} from "./management.ts";

const FIXTURES = new URL("../../fixtures/zitadel/", import.meta.url);
const ORG_ID = "281004938493021377";
const PROJECT_ID = "281004901122334455";
const KEY_ID = "281004961234567890";
const KEY_EXPIRATION = new Date("2030-01-01T00:00:00Z");
/** Headers checked even when a recording leaves them out: then they must be absent. */
const SIGNIFICANT_HEADERS = ["authorization", "x-zitadel-orgid", "content-type"];

interface Exchange {
  call: string;
  request: { method: string; path: string; headers: Record<string, string>; body: unknown };
  response: { status: number; body: unknown };
}

/** A loopback server answering the recorded exchanges in order, checking each request. */
interface Replay extends AsyncDisposable {
  readonly url: string;
  /** What differed from the recordings; empty when every request matched. */
  readonly mismatches: string[];
  /** Recorded exchanges not yet requested. */
  readonly remaining: number;
}

async function replay(
  fixture: string,
  options: { keyDetails?: string; calls?: string[] } = {},
): Promise<Replay> {
  const text = await Deno.readTextFile(fileURLToPath(new URL(fixture, FIXTURES)));
  const recorded = (JSON.parse(text) as { exchanges: Exchange[] }).exchanges
    .filter((exchange) => options.calls === undefined || options.calls.includes(exchange.call));
  const keyDetails = options.keyDetails ?? btoa(zitadelKeyFile("device-pi-lab-1"));
  const queue = [...recorded];
  const mismatches: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const expected = queue.shift();
      const url = new URL(request.url);
      const what = `${request.method} ${url.pathname}`;
      if (expected === undefined) {
        mismatches.push(`unexpected request ${what}`);
        return Response.json({ code: 2, message: "not recorded" }, { status: 500 });
      }
      const { call, request: want } = expected;
      if (request.method !== want.method || url.pathname !== want.path) {
        mismatches.push(`${call}: got ${what}, recorded ${want.method} ${want.path}`);
      }
      const names = new Set([...Object.keys(want.headers), ...SIGNIFICANT_HEADERS]);
      for (const name of names) {
        const got = request.headers.get(name) ?? undefined;
        if (got !== want.headers[name]) {
          mismatches.push(`${call}: header ${name} is ${got}, recorded ${want.headers[name]}`);
        }
      }
      const body: unknown = JSON.parse(await request.text());
      try {
        assert.deepStrictEqual(body, want.body);
      } catch {
        mismatches.push(
          `${call}: body ${JSON.stringify(body)}, recorded ${JSON.stringify(want.body)}`,
        );
      }
      const answer = JSON.stringify(expected.response.body).replaceAll(
        "{{KEY_DETAILS}}",
        keyDetails,
      );
      return new Response(answer, {
        status: expected.response.status,
        headers: { "content-type": "application/json" },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    mismatches,
    get remaining() {
      return queue.length;
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A key file the way Zitadel's AddMachineKey returns it (base64-decoded). */
function zitadelKeyFile(userId: string): string {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const key = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  return JSON.stringify({ type: "serviceaccount", keyId: KEY_ID, key, userId });
}

function management(server: Replay, { withOrg = true } = {}): ZitadelManagement {
  return createZitadelManagement({
    baseUrl: `${server.url}/`,
    token: "admin-token",
    ...(withOrg ? { orgId: ORG_ID } : {}),
  });
}

function identityProvider(server: Replay) {
  return createZitadelIdentityProvider({
    management: management(server),
    projectId: PROJECT_ID,
    keyExpiration: KEY_EXPIRATION,
  });
}

function assertAllReplayed(server: Replay): void {
  assert.deepEqual(server.mismatches, []);
  assert.equal(server.remaining, 0, "every recorded call was made");
}

async function rejection(promise: Promise<unknown>): Promise<ZitadelApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ZitadelApiError, `expected a ZitadelApiError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ZitadelApiError, but the promise resolved");
}

Deno.test("ensureDeviceIdentity() creates the user, grant and key, and returns a usable key file", async () => {
  await using server = await replay("enroll_new.json");
  const identity = await identityProvider(server).ensureDeviceIdentity("pi-lab-1");
  assertAllReplayed(server);
  assert.equal(identity.changed, true);
  assert.equal(identity.clientId, "device-pi-lab-1");
  assert.ok(identity.keyFile !== undefined);
  // The agent's key_file loader reads exactly what Zitadel hands out.
  const jwk = await loadPrivateKey(identity.keyFile);
  assert.equal(jwk.kid, KEY_ID);
  assert.equal(jwk.clientId, "device-pi-lab-1");
  assert.equal(jwk.kty, "RSA");
  assert.ok(jwk.d !== undefined, "a private key");
});

Deno.test("ensureDeviceIdentity() changes nothing and returns no key on a second enroll", async () => {
  await using server = await replay("enroll_again.json");
  const identity = await identityProvider(server).ensureDeviceIdentity("pi-lab-1");
  assertAllReplayed(server);
  assert.deepEqual(identity, { changed: false, clientId: "device-pi-lab-1" });
});

Deno.test("ensureDeviceIdentity() adds a key to an existing user when asked for a new one", async () => {
  await using server = await replay("enroll_new_key.json");
  const identity = await identityProvider(server).ensureDeviceIdentity("pi-lab-1", {
    newKey: true,
  });
  assertAllReplayed(server);
  assert.equal(identity.changed, true);
  assert.equal((await loadPrivateKey(identity.keyFile ?? "")).kid, KEY_ID);
});

Deno.test("ensureDeviceIdentity() uses the user another enroll created meanwhile", async () => {
  await using server = await replay("enroll_race.json");
  const identity = await identityProvider(server).ensureDeviceIdentity("pi-lab-1");
  assertAllReplayed(server);
  assert.deepEqual(identity, { changed: false, clientId: "device-pi-lab-1" });
});

Deno.test("ensureDeviceIdentity() names the call and Zitadel's message when permission is missing", async () => {
  await using server = await replay("enroll_permission_denied.json");
  const err = await rejection(identityProvider(server).ensureDeviceIdentity("pi-lab-1"));
  assertAllReplayed(server);
  assert.equal(err.call, ZitadelCalls.listUsers);
  assert.equal(err.request, "POST /management/v1/users/_search");
  assert.equal(err.status, 403);
  assert.equal(err.code, 7);
  assert.equal(err.zitadelMessage, "No matching permissions found (AUTH-p9Wm3)");
  assert.equal(err.details.length, 1);
  assert.equal(
    err.message,
    "Zitadel refused ListUsers (POST /management/v1/users/_search): No matching permissions " +
      `found (AUTH-p9Wm3) (HTTP 403): the admin lacks the permission in organisation ${ORG_ID} ` +
      "(Zitadel role ORG_USER_MANAGER or ORG_OWNER)",
  );
});

Deno.test("ensureDeviceIdentity() refuses a user name that belongs to a human user", async () => {
  await using server = await replay("enroll_name_taken.json");
  const err = await rejection(identityProvider(server).ensureDeviceIdentity("pi-lab-1"));
  assertAllReplayed(server);
  assert.match(err.message, /"device-pi-lab-1" in Zitadel belongs to a human user/);
});

Deno.test("ensureMachineUser() reports created, then unchanged", async () => {
  await using created = await replay("enroll_new.json", {
    calls: [ZitadelCalls.listUsers, ZitadelCalls.addMachineUser],
  });
  const spec = {
    userName: "device-pi-lab-1",
    userId: "device-pi-lab-1",
    name: "pi-lab-1",
    description: "Fleet device pi-lab-1",
  };
  assert.deepEqual(await management(created).ensureMachineUser(spec), {
    changed: true,
    userId: "device-pi-lab-1",
  });
  assertAllReplayed(created);

  await using existing = await replay("enroll_again.json", { calls: [ZitadelCalls.listUsers] });
  assert.deepEqual(await management(existing).ensureMachineUser(spec), {
    changed: false,
    userId: "device-pi-lab-1",
  });
  assertAllReplayed(existing);
});

Deno.test("ensureUserGrant() reports created, then unchanged on already exists", async () => {
  const grant = { projectId: PROJECT_ID, roleKeys: ["device"] };
  await using created = await replay("enroll_new.json", { calls: [ZitadelCalls.addUserGrant] });
  assert.deepEqual(await management(created).ensureUserGrant("device-pi-lab-1", grant), {
    changed: true,
    userGrantId: "281004975566778899",
  });
  assertAllReplayed(created);

  await using existing = await replay("enroll_again.json", { calls: [ZitadelCalls.addUserGrant] });
  assert.deepEqual(await management(existing).ensureUserGrant("device-pi-lab-1", grant), {
    changed: false,
    userGrantId: undefined,
  });
  assertAllReplayed(existing);
});

const FLEET_ROLES = [
  { key: "device", displayName: "Fleet device" },
  { key: "operator", displayName: "Fleet operator" },
  { key: "viewer", displayName: "Fleet viewer" },
  { key: "maintainer", displayName: "Fleet maintainer" },
  { key: "admin", displayName: "Fleet admin" },
];

Deno.test("ensureProject() and ensureProjectRoles() create what is missing, then only that", async () => {
  await using created = await replay("setup_new.json");
  assert.deepEqual(await management(created).ensureProject("fleet"), {
    changed: true,
    projectId: PROJECT_ID,
  });
  assert.deepEqual(await management(created).ensureProjectRoles(PROJECT_ID, FLEET_ROLES), {
    added: ["device", "operator", "viewer", "maintainer", "admin"],
  });
  assertAllReplayed(created);

  await using again = await replay("setup_again.json");
  assert.deepEqual(await management(again).ensureProject("fleet"), {
    changed: false,
    projectId: PROJECT_ID,
  });
  assert.deepEqual(await management(again).ensureProjectRoles(PROJECT_ID, FLEET_ROLES), {
    added: ["admin"],
  });
  assertAllReplayed(again);
});

Deno.test("addMachineKey() rejects a key file that is not Zitadel's JSON key", async () => {
  for (const keyDetails of [btoa("not json"), btoa(zitadelKeyFile("someone-else"))]) {
    await using server = await replay("enroll_new.json", {
      calls: [ZitadelCalls.addMachineKey],
      keyDetails,
    });
    const err = await rejection(
      management(server).addMachineKey("device-pi-lab-1", { expirationDate: KEY_EXPIRATION }),
    );
    assertAllReplayed(server);
    assert.equal(err.call, ZitadelCalls.addMachineKey);
    assert.match(err.message, /with a key that cannot be used/);
  }
});

Deno.test("createZitadelManagement() leaves x-zitadel-orgid out without an organisation", async () => {
  await using server = await replay("enroll_new.json", { calls: [ZitadelCalls.listUsers] });
  await management(server, { withOrg: false }).findMachineUser("device-pi-lab-1");
  assert.deepEqual(server.mismatches, [
    `ListUsers: header x-zitadel-orgid is undefined, recorded ${ORG_ID}`,
  ]);
});

Deno.test("createZitadelManagement() reports an unreachable Zitadel", async () => {
  const server = await replay("enroll_new.json");
  await server[Symbol.asyncDispose]();
  const err = await rejection(management(server).findMachineUser("device-pi-lab-1"));
  assert.equal(err.status, undefined);
  assert.match(err.message, /^Cannot reach Zitadel at http:\/\/127\.0\.0\.1:\d+ for ListUsers: /);
});
