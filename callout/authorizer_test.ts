import assert from "node:assert/strict";
import { userLimits } from "../core/limits.ts";
import { devicePermissions, operatorPermissions, personPermissions } from "../core/permissions.ts";
import { principalOf } from "../core/principal.ts";
import { authorize, type AuthorizerPolicy, type Decision } from "./authorizer.ts";

const ISS = "https://idp.example.com/realms/fleet";
const NOW = Date.parse("2030-01-01T00:00:00.500Z");
const HOUR = 3_600_000;

const POLICY: AuthorizerPolicy = {
  deviceIdClaim: "sub",
  roleClaim: "roles",
  stripPrefix: "",
  roles: {
    "fleet-device": "device",
    "fleet-operator": "operator",
    "fleet-viewer": "viewer",
    "fleet-maintainer": "maintainer",
    "fleet-admin": "admin",
  },
  maxTtlSeconds: 3600,
};

function decide(
  claims: Record<string, unknown>,
  policy: Partial<AuthorizerPolicy> = {},
  expiresAt = NOW + 600_000,
): Decision {
  return authorize({ claims: { iss: ISS, ...claims }, expiresAt }, { ...POLICY, ...policy }, NOW);
}

function reason(decision: Decision): string {
  assert.equal(decision.kind, "deny", JSON.stringify(decision));
  return decision.kind === "deny" ? decision.reason : "";
}

Deno.test("authorize() lets a device in with exactly its permissions", () => {
  assert.deepStrictEqual(decide({ sub: "dev-a", roles: ["fleet-device"] }), {
    kind: "allow",
    role: "device",
    deviceId: "dev-a",
    name: "dev-a",
    permissions: devicePermissions("dev-a"),
    limits: userLimits("device"),
    expiresAt: Date.parse("2030-01-01T00:10:00Z"),
  });
});

Deno.test("authorize() gives the operator and people their role's permissions in their principal's name", () => {
  const alice = principalOf(ISS, "alice");
  for (
    const [role, expected, permissions] of [
      ["fleet-operator", "operator", operatorPermissions(alice)],
      ["fleet-viewer", "viewer", personPermissions("viewer", alice)],
      ["fleet-maintainer", "maintainer", personPermissions("maintainer", alice)],
      ["fleet-admin", "admin", personPermissions("admin", alice)],
    ] as const
  ) {
    const decision = decide({ iss: ISS, sub: "alice", roles: [role] });
    assert.equal(decision.kind, "allow");
    if (decision.kind !== "allow") return;
    assert.equal(decision.role, expected);
    assert.equal(decision.name, "alice");
    assert.equal(decision.principal, alice);
    assert.equal(decision.deviceId, undefined);
    assert.deepStrictEqual(decision.permissions, permissions);
    assert.deepStrictEqual(decision.limits, userLimits(expected));
  }
});

Deno.test("authorize() does not need a device id for operators and names them by sub or client_id", () => {
  const byClientId = decide({ iss: ISS, client_id: "fleet-operator", roles: "fleet-operator" });
  assert.equal(byClientId.kind === "allow" && byClientId.name, "fleet-operator");
  assert.equal(
    byClientId.kind === "allow" && byClientId.principal,
    principalOf(ISS, "fleet-operator"),
  );
});

Deno.test("authorize() refuses a person or service whose token names no principal", () => {
  for (const claims of [{ iss: undefined, sub: "alice" }, {}, { sub: 42 }]) {
    assert.match(
      reason(decide({ ...claims, roles: ["fleet-viewer"] })),
      /no "iss" with a "sub" \(or "client_id"\) claim/,
    );
  }
});

Deno.test("authorize() picks the strongest of several mapped roles and ignores unknown ones", () => {
  const decision = decide({ sub: "dev-a", roles: ["other", "fleet-device", "fleet-operator"] });
  assert.equal(decision.kind === "allow" && decision.role, "operator");
  const device = decide({ sub: "dev-a", roles: ["other", "fleet-device"] });
  assert.equal(device.kind === "allow" && device.role, "device");
});

Deno.test("authorize() reads a single role name, and an object's keys (Zitadel)", () => {
  assert.equal(decide({ sub: "dev-a", roles: "fleet-device" }).kind, "allow");
  const zitadel = "urn:zitadel:iam:org:project:roles";
  const decision = decide(
    { sub: "dev-a", [zitadel]: { "fleet-device": { "2981": "fleet.example.com" } } },
    { roleClaim: zitadel },
  );
  assert.equal(decision.kind === "allow" && decision.role, "device");
});

Deno.test("authorize() follows a dotted role claim path when no claim has that name", () => {
  const claims = { sub: "dev-a", realm_access: { roles: ["fleet-device"] } };
  assert.equal(decide(claims, { roleClaim: "realm_access.roles" }).kind, "allow");
  // An exact claim name wins over the path.
  const exact = { sub: "dev-a", "a.b": ["fleet-admin"], a: { b: ["fleet-device"] } };
  const decision = decide(exact, { roleClaim: "a.b" });
  assert.equal(decision.kind === "allow" && decision.role, "admin");
  assert.match(reason(decide({ sub: "dev-a", a: ["x"] }, { roleClaim: "a.b" })), /no "a\.b"/);
});

Deno.test("authorize() refuses a token without the role claim", () => {
  assert.equal(
    reason(decide({ sub: "dev-a" })),
    `the token has no "roles" claim, so it carries no roles`,
  );
});

Deno.test("authorize() tells a Zitadel token without roles which scopes to request", () => {
  const refused = reason(
    decide({ sub: "dev-a" }, { roleClaim: "urn:zitadel:iam:org:project:roles" }),
  );
  assert.match(refused, /has no "urn:zitadel:iam:org:project:roles" claim, so it carries no roles/);
  assert.match(refused, /must request the scope "urn:zitadel:iam:org:projects:roles"/);
  assert.match(refused, /"urn:zitadel:iam:org:project:id:<project id>:aud"/);
  assert.match(refused, /provider = "zitadel"/);
});

Deno.test("authorize() refuses a malformed role claim", () => {
  assert.match(
    reason(decide({ sub: "dev-a", roles: 7 })),
    /"roles" claim is not a list .*number 7/,
  );
  assert.match(reason(decide({ sub: "dev-a", roles: null })), /not a list of roles \(null\)/);
  assert.match(reason(decide({ sub: "dev-a", roles: ["fleet-device", 1] })), /non-string/);
});

Deno.test("authorize() refuses unknown roles and names them and the configured ones", () => {
  const why = reason(decide({ sub: "dev-a", roles: ["viewer", "toString"] }));
  assert.match(why, /the roles "viewer", "toString", none of which is a Fleet role/);
  assert.match(
    why,
    /configured: "fleet-device", "fleet-operator", "fleet-viewer", "fleet-maintainer", "fleet-admin"/,
  );
  assert.match(reason(decide({ sub: "dev-a", roles: [] })), /has no roles, none of which/);
  assert.match(reason(decide({ sub: "dev-a", roles: { __proto__: null } })), /no roles/);
});

Deno.test("authorize() refuses a device without a device id claim", () => {
  assert.equal(
    reason(decide({ roles: ["fleet-device"] })),
    `the token has no "sub" claim to take the device id from`,
  );
  assert.match(
    reason(decide({ sub: 42, roles: ["fleet-device"] })),
    /"sub" claim is not a string \(number 42\)/,
  );
  assert.match(
    reason(decide({ sub: "x", roles: ["fleet-device"] }, { deviceIdClaim: "device_id" })),
    /no "device_id" claim/,
  );
});

const BAD_IDS: [string, RegExp][] = [
  ["*", /dots and the wildcards/],
  [">", /dots and the wildcards/],
  ["dev-a.>", /dots and the wildcards/],
  ["dev.a", /dots and the wildcards/],
  ["dev a", /whitespace/],
  ["dev-a\n", /whitespace/],
  ["Dev-A", /uppercase/],
  ["", /empty/],
  ["-dev", /start and end/],
  ["dev_a", /only lowercase/],
  ["x".repeat(64), /64 characters/],
];

for (const [id, problem] of BAD_IDS) {
  Deno.test(`authorize() refuses the device id ${JSON.stringify(id)} and names it`, () => {
    const why = reason(decide({ sub: id, roles: ["fleet-device"] }));
    assert.ok(
      why.startsWith(`invalid device id ${JSON.stringify(id)} (from the "sub" claim)`),
      why,
    );
    assert.match(why, problem);
  });
}

Deno.test("authorize() strips the configured prefix from the device id", () => {
  const decision = decide({ sub: "device-pi-1", roles: ["fleet-device"] }, {
    stripPrefix: "device-",
  });
  assert.equal(decision.kind === "allow" && decision.deviceId, "pi-1");
  assert.deepStrictEqual(
    decision.kind === "allow" && decision.permissions,
    devicePermissions("pi-1"),
  );
});

Deno.test("authorize() refuses a device id without the prefix, or with nothing after it", () => {
  assert.match(
    reason(decide({ sub: "pi-1", roles: ["fleet-device"] }, { stripPrefix: "device-" })),
    /"pi-1", which does not start with the prefix "device-"/,
  );
  assert.match(
    reason(decide({ sub: "device-", roles: ["fleet-device"] }, { stripPrefix: "device-" })),
    /invalid device id "" .*empty/,
  );
  assert.match(
    reason(decide({ sub: "device-Pi.1", roles: ["fleet-device"] }, { stripPrefix: "device-" })),
    /invalid device id "Pi\.1"/,
  );
});

Deno.test("authorize() never lets the JWT outlive the token", () => {
  const tokenExpiry = NOW + 90_250;
  const decision = decide({ sub: "dev-a", roles: ["fleet-device"] }, {}, tokenExpiry);
  assert.equal(decision.kind, "allow");
  if (decision.kind !== "allow") return;
  assert.ok(decision.expiresAt <= tokenExpiry);
  assert.equal(decision.expiresAt % 1000, 0, "a whole second (JWT exp is in seconds)");
  assert.equal(decision.expiresAt, Date.parse("2030-01-01T00:01:30Z"));
});

Deno.test("authorize() caps the JWT at max_ttl_seconds", () => {
  const decision = decide(
    { sub: "dev-a", roles: ["fleet-device"] },
    { maxTtlSeconds: 60 },
    NOW + HOUR,
  );
  assert.equal(decision.kind === "allow" && decision.expiresAt, Date.parse("2030-01-01T00:01:00Z"));
});

Deno.test("authorize() refuses an expired token and one that expires within a second", () => {
  const claims = { sub: "dev-a", roles: ["fleet-device"] };
  assert.equal(reason(decide(claims, {}, NOW)), "the token has expired");
  assert.equal(reason(decide(claims, {}, NOW - 1)), "the token has expired");
  assert.equal(reason(decide(claims, {}, Number.NaN)), "the token has expired");
  // 0.3 s left: the JWT would end (rounded down) before now.
  assert.equal(reason(decide(claims, {}, NOW + 300)), "the token expires within a second");
});

Deno.test("authorize() does not take roles from the object prototype", () => {
  const decision = decide({ sub: "dev-a", roles: ["constructor", "hasOwnProperty"] });
  assert.match(reason(decision), /none of which is a Fleet role/);
});
