import assert from "node:assert/strict";
import { InvalidIdentifierError } from "./ids.ts";
import {
  deviceInboxPrefix,
  devicePermissions,
  operatorPermissions,
  permissionsForRole,
  personPermissions,
} from "./permissions.ts";

/**
 * Whether `pattern` (a permission, with `*` and `>`) covers `subject` the way nats-server
 * checks permissions: a literal subject (publish, a plain subscription) or a subscription
 * that itself has wildcards, which is allowed only when every subject it could match is
 * covered (a `*` in the subject is covered by `*` or `>`, a `>` only by `>`).
 */
function covers(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i]!;
    if (token === ">") return s.length > i; // one or more tokens left
    if (i >= s.length) return false;
    const t = s[i]!;
    if (token === "*") {
      if (t === ">") return false;
      continue;
    }
    if (t !== token) return false; // a literal covers neither `*` nor `>`
  }
  return p.length === s.length;
}

function allowed(patterns: string[], subject: string): boolean {
  return patterns.some((p) => covers(p, subject));
}

Deno.test("covers() follows NATS wildcard rules (the matcher the tests rely on)", () => {
  assert.ok(covers("a.b", "a.b"));
  assert.ok(!covers("a.b", "a.b.c"));
  assert.ok(!covers("a.b.c", "a.b"));
  assert.ok(covers("a.*", "a.b"));
  assert.ok(!covers("a.*", "a.b.c"));
  assert.ok(covers("a.>", "a.b.c"));
  assert.ok(!covers("a.>", "a"));
  assert.ok(covers(">", "x"));
  assert.ok(covers("a.*", "a.*"));
  assert.ok(!covers("a.*", "a.>"));
  assert.ok(covers("a.>", "a.>"));
  assert.ok(!covers("a.b", "a.*"));
  assert.ok(!covers("_INBOX_dev-a.>", "_INBOX.>"));
});

Deno.test("devicePermissions() is exactly the set verified in DESIGN.md §5", () => {
  assert.deepStrictEqual(devicePermissions("dev-a"), {
    pub: {
      allow: [
        "$JS.API.CONSUMER.INFO.KV_desired-state.device-dev-a",
        "$JS.API.CONSUMER.DELETE.KV_desired-state.device-dev-a",
        "$KV.device-info.info.dev-a",
        "$KV.device-state.state.dev-a.>",
        "$KV.device-heartbeat.heartbeat.dev-a",
        "fleet-audit.command.dev-a",
        "fleet-audit.session.dev-a",
        "device-sessions.dev-a.*.*.out",
      ],
    },
    sub: {
      allow: [
        "_INBOX_dev-a.>",
        "device-commands.dev-a.>",
        "device-sessions.dev-a.*.*.ctl",
        "device-sessions.dev-a.*.*.in",
      ],
    },
    resp: { max: 1, ttlMs: 120_000 },
  });
});

Deno.test("permissionsForRole() picks the template of the role", () => {
  assert.deepStrictEqual(permissionsForRole("device", "pi-1"), devicePermissions("pi-1"));
  assert.deepStrictEqual(permissionsForRole("operator", "op-1"), operatorPermissions("op-1"));
  for (const role of ["viewer", "maintainer", "admin"] as const) {
    assert.deepStrictEqual(permissionsForRole(role, "p-1"), personPermissions(role, "p-1"));
  }
  for (const role of ["device", "operator", "viewer", "maintainer", "admin"] as const) {
    for (const bad of ["", ">", "*", "a.b", "A"]) {
      assert.throws(() => permissionsForRole(role, bad), InvalidIdentifierError, `${role} ${bad}`);
    }
  }
});

/** What the operator does on the wire (buckets, leases, the devices' consumers). */
const OPERATOR_TRAFFIC = [
  "$JS.API.INFO",
  "$JS.API.STREAM.CREATE.KV_desired-state",
  "$JS.API.STREAM.INFO.KV_device-state",
  "$JS.API.STREAM.UPDATE.KV_device-heartbeat",
  "$JS.API.STREAM.CREATE.KV_fleet-leases",
  "$JS.API.CONSUMER.CREATE.KV_device-info.fleet_watch_X.$KV.device-info.>",
  "$JS.API.CONSUMER.CREATE.KV_desired-state.oc_X.$KV.desired-state.*.agent-conflict",
  "$JS.API.CONSUMER.CREATE.KV_desired-state.device-dev-a.$KV.desired-state.dev-a.>",
  "$JS.API.CONSUMER.DURABLE.CREATE.KV_desired-state.device-dev-a",
  "$JS.API.CONSUMER.INFO.KV_desired-state.device-dev-a",
  "$JS.API.CONSUMER.DELETE.KV_desired-state.device-dev-a",
  "$JS.API.CONSUMER.NAMES.KV_desired-state",
  "$JS.API.CONSUMER.DELETE.KV_fleet-deployments.oc_X",
  "$JS.API.DIRECT.GET.KV_fleet-leases.$KV.fleet-leases.operator",
  "$JS.API.STREAM.MSG.GET.KV_desired-state",
  "$JS.FC.KV_device-state.fleet_watch_X.1.2",
  "$KV.desired-state.dev-a.default.web",
  "$KV.desired-state.dev-a.agent-conflict",
  "$KV.fleet-deployment-status.default.web",
  "$KV.fleet-leases.operator",
  // The rollout actions stream: kept, and read with an ordered consumer.
  "$JS.API.STREAM.CREATE.fleet-rollout-actions",
  "$JS.API.STREAM.INFO.fleet-rollout-actions",
  "$JS.API.CONSUMER.CREATE.fleet-rollout-actions.X_1",
  "$JS.API.CONSUMER.MSG.NEXT.fleet-rollout-actions.X_1",
  "$JS.API.CONSUMER.DELETE.fleet-rollout-actions.X_1",
];

/** What only devices and people may publish, or no one. */
const NOT_THE_OPERATORS = [
  "device-commands.dev-a.restart.op-1",
  "device-commands.dev-a.ping.op-1",
  "$KV.device-info.info.dev-a",
  "$KV.device-state.state.dev-a.default.web",
  "$KV.device-heartbeat.heartbeat.dev-a",
  "$KV.fleet-deployments.default.web",
  "$JS.API.STREAM.DELETE.KV_desired-state",
  "$JS.API.STREAM.PURGE.KV_device-state",
  "$JS.API.STREAM.CREATE.OTHER",
  "$JS.API.STREAM.LIST",
  "$JS.API.CONSUMER.CREATE.OTHER.X",
  "$JS.API.ACCOUNT.PURGE.FLEET",
  "_INBOX.abc",
  // Actions are people's, in their own names.
  "fleet-rollout-actions.default.web.op-1",
  "fleet-rollout-actions.default.web.mia-1",
  "$JS.API.STREAM.DELETE.fleet-rollout-actions",
  "$JS.API.STREAM.PURGE.fleet-rollout-actions",
  "$JS.API.STREAM.UPDATE.fleet-rollout-actions",
];

Deno.test("operatorPermissions() allows what the operator does and nothing more", () => {
  const perms = operatorPermissions("op-1");
  for (const s of OPERATOR_TRAFFIC) assert.ok(allowed(perms.pub.allow, s), `publish ${s}`);
  for (const s of NOT_THE_OPERATORS) assert.ok(!allowed(perms.pub.allow, s), `publish ${s}`);
  for (const s of ["_INBOX_p_op-1.>", "$JS.EVENT.ADVISORY.CONSUMER.DELETED.KV_desired-state.*"]) {
    assert.ok(allowed(perms.sub.allow, s), `subscribe ${s}`);
  }
  for (const s of [">", "_INBOX.>", "_INBOX_dev-a.>", "_INBOX_p_alice.>", "device-commands.>"]) {
    assert.ok(!allowed(perms.sub.allow, s), `subscribe ${s}`);
  }
  assert.equal(perms.resp, undefined);
});

/** What `fleet get devices|deployments` does on the wire. */
const GET_TRAFFIC = [
  "$JS.API.INFO",
  "$JS.API.STREAM.INFO.KV_device-info",
  "$JS.API.STREAM.INFO.KV_desired-state",
  "$JS.API.CONSUMER.CREATE.KV_device-heartbeat.fleet_watch_X.$KV.device-heartbeat.>",
  "$JS.API.CONSUMER.CREATE.KV_fleet-deployments.fleet_watch_X.$KV.fleet-deployments.>",
  "$JS.API.STREAM.MSG.GET.KV_desired-state",
  "$JS.API.DIRECT.GET.KV_fleet-deployments.$KV.fleet-deployments.default.web",
  "$JS.FC.KV_device-info.fleet_watch_X.1.2",
];

Deno.test("personPermissions() gives each role its reads, writes and verbs, in its own name", () => {
  const viewer = personPermissions("viewer", "bob-1");
  const maintainer = personPermissions("maintainer", "mia-1");
  const admin = personPermissions("admin", "ada-1");
  for (const perms of [viewer, maintainer, admin]) {
    for (const s of GET_TRAFFIC) assert.ok(allowed(perms.pub.allow, s), `publish ${s}`);
  }
  const can = (perms: typeof viewer, subjects: string[], yes: boolean) => {
    for (const s of subjects) assert.equal(allowed(perms.pub.allow, s), yes, `publish ${s}`);
  };
  can(viewer, ["device-commands.dev-a.ping.bob-1"], true);
  can(viewer, ["fleet-rollout-actions.default.web.bob-1"], false);
  can(maintainer, ["fleet-rollout-actions.default.web.mia-1"], true);
  can(admin, ["fleet-rollout-actions.shop.api.ada-1"], true);
  can(maintainer, [
    "fleet-rollout-actions.default.web.bob-1",
    "fleet-rollout-actions.default.web.mia-1.x",
    // Reading the actions through a consumer would let a person pick where the server delivers.
    "$JS.API.CONSUMER.CREATE.fleet-rollout-actions.X",
    "$JS.API.STREAM.CREATE.fleet-rollout-actions",
  ], false);
  can(admin, ["fleet-rollout-actions.default.web.mia-1"], false);
  can(viewer, [
    "device-commands.dev-a.ping.mia-1",
    "device-commands.dev-a.restart.bob-1",
    "$KV.fleet-deployments.default.web",
    "$KV.desired-state.dev-a.default.web",
    // A consumer on desired state could take over the one prepared for a device.
    "$JS.API.CONSUMER.CREATE.KV_desired-state.device-dev-a.$KV.desired-state.dev-a.>",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.device-dev-a.$KV.desired-state.*.agent-conflict",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.device-dev-a",
    "$JS.API.CONSUMER.DELETE.KV_desired-state.device-dev-a",
    "$JS.API.STREAM.CREATE.KV_fleet-deployments",
    "$JS.API.STREAM.UPDATE.KV_device-state",
  ], false);
  for (const verb of ["ping", "diag", "restart", "reconcile", "logs", "rollout"]) {
    can(maintainer, [`device-commands.dev-a.${verb}.mia-1`], true);
    can(maintainer, [`device-commands.dev-a.${verb}.bob-1`], false);
  }
  can(maintainer, ["$KV.fleet-deployments.default.web"], true);
  can(maintainer, [
    "device-commands.dev-a.exec.mia-1",
    "$KV.desired-state.dev-a.default.web",
    "$KV.device-state.state.dev-a.default.web",
    "$KV.fleet-deployment-status.default.web",
  ], false);
  can(admin, [
    "device-commands.dev-a.exec.ada-1",
    "$KV.desired-state.dev-a.default.web",
    "$JS.API.STREAM.DELETE.KV_device-state",
    "$O.fleet-releases.C.x",
  ], true);
  can(admin, ["device-commands.dev-a.exec.mia-1", "device-commands.dev-a.ping.bob-1"], false);
  assert.deepStrictEqual(viewer.sub.allow, ["_INBOX_p_bob-1.>"]);
  assert.deepStrictEqual(maintainer.sub.allow, [
    "_INBOX_p_mia-1.>",
    "device-sessions.*.mia-1.*.out",
  ]);
  assert.deepStrictEqual(admin.sub.allow, [">"]);
});

Deno.test("personPermissions() lets a maintainer or admin use only the sessions it opened", () => {
  const session = (principal: string, channel: string) =>
    `device-sessions.dev-a.${principal}.abcdef0123456789.${channel}`;
  const viewer = personPermissions("viewer", "bob-1");
  const maintainer = personPermissions("maintainer", "mia-1");
  const admin = personPermissions("admin", "ada-1");
  for (const ch of ["ctl", "in", "out"]) {
    assert.ok(!allowed(viewer.pub.allow, session("bob-1", ch)), `viewer publishes ${ch}`);
    assert.ok(!allowed(viewer.sub.allow, session("bob-1", ch)), `viewer reads ${ch}`);
    // Nobody writes or reads in another's name, nor writes the device's side.
    for (const p of [maintainer, admin]) {
      assert.ok(!allowed(p.pub.allow, session("bob-1", ch)), `publish ${ch} of bob-1`);
    }
    assert.ok(!allowed(maintainer.sub.allow, session("bob-1", ch)), `maintainer reads bob's ${ch}`);
  }
  for (const [p, who] of [[maintainer, "mia-1"], [admin, "ada-1"]] as const) {
    assert.ok(allowed(p.pub.allow, session(who, "ctl")));
    assert.ok(allowed(p.pub.allow, session(who, "in")));
    assert.ok(!allowed(p.pub.allow, session(who, "out")), "it cannot forge the device's data");
    assert.ok(allowed(p.sub.allow, session(who, "out")));
  }
  assert.ok(!allowed(maintainer.sub.allow, "device-sessions.>"));
  assert.ok(!allowed(maintainer.sub.allow, "device-sessions.*.*.*.out"));
});

Deno.test("deviceInboxPrefix() is one token per device", () => {
  assert.equal(deviceInboxPrefix("pi-1"), "_INBOX_pi-1");
  assert.throws(() => deviceInboxPrefix("pi.1"), InvalidIdentifierError);
});

for (const bad of ["*", ">", "dev.a", "dev a", "Dev-A", "", "dev-a.>", "a*"]) {
  Deno.test(`devicePermissions() rejects the device id ${JSON.stringify(bad)}`, () => {
    assert.throws(() => devicePermissions(bad), (err: unknown) => {
      assert.ok(err instanceof InvalidIdentifierError);
      assert.equal(err.value, bad);
      assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
      return true;
    });
  });
}

/** What device `id` does on the wire, as publish and subscribe subjects. */
function traffic(id: string): { pub: string[]; sub: string[] } {
  return {
    pub: [
      `$JS.API.CONSUMER.INFO.KV_desired-state.device-${id}`,
      `$JS.API.CONSUMER.DELETE.KV_desired-state.device-${id}`,
      `$KV.device-info.info.${id}`,
      `$KV.device-state.state.${id}.default.web`,
      `$KV.device-heartbeat.heartbeat.${id}`,
      `fleet-audit.session.${id}`,
      `device-sessions.${id}.mia-1.abcdef0123456789.out`,
    ],
    sub: [
      `_INBOX_${id}.>`,
      `_INBOX_${id}.abc123`,
      `_INBOX_${id}.desired-state`,
      `device-commands.${id}.>`,
      `device-commands.${id}.restart`,
      `device-sessions.${id}.mia-1.abcdef0123456789.ctl`,
      `device-sessions.${id}.mia-1.abcdef0123456789.in`,
    ],
  };
}

Deno.test("devicePermissions() allows what the agent does on the wire", () => {
  const perms = devicePermissions("dev-a");
  const own = traffic("dev-a");
  for (const s of own.pub) assert.ok(allowed(perms.pub.allow, s), `publish ${s}`);
  for (const s of own.sub) assert.ok(allowed(perms.sub.allow, s), `subscribe ${s}`);
});

/** Device ids chosen to catch prefix mistakes: one is a prefix of another. */
const IDS = ["dev-a", "dev-b", "dev", "dev-a2", "a", "dev-a-b"];

for (const a of IDS) {
  Deno.test(`devicePermissions("${a}") never matches another device's subjects`, () => {
    const perms = devicePermissions(a);
    for (const b of IDS.filter((id) => id !== a)) {
      const other = traffic(b);
      const stray = [
        ...other.pub.filter((s) => allowed(perms.pub.allow, s)),
        ...other.sub.filter((s) => allowed(perms.sub.allow, s)),
        // Reading another device's desired state or reports in any other way.
        ...[
          `$JS.API.CONSUMER.CREATE.KV_device-state.X.$KV.device-state.state.${b}.>`,
          `$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.${b}.default.web`,
          `$KV.desired-state.${b}.default.web`,
          `$KV.device-info.info.${b}.x`,
        ].filter((s) => allowed(perms.pub.allow, s)),
        ...[`$KV.desired-state.${b}.>`, `$KV.device-state.state.${b}.>`].filter((s) =>
          allowed(perms.sub.allow, s)
        ),
      ];
      assert.deepStrictEqual(stray, [], `device ${a} reaches device ${b}`);
    }
  });
}

Deno.test("devicePermissions() never grants the subjects that leak other devices' data", () => {
  const perms = devicePermissions("dev-a");
  const forbiddenPub = [
    "$JS.API.STREAM.MSG.GET.KV_desired-state",
    "$JS.API.STREAM.MSG.GET.KV_device-state",
    "$JS.API.STREAM.INFO.KV_desired-state",
    "$JS.API.STREAM.INFO.KV_device-info",
    "$JS.API.STREAM.LIST",
    "$JS.API.INFO",
    "$JS.API.>",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.X.$KV.desired-state.>",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.X.$KV.desired-state.*.>",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.X",
    "$JS.API.CONSUMER.DURABLE.CREATE.KV_desired-state.X",
    // Whoever creates a consumer chooses where the server delivers it, even on its own keys.
    "$JS.API.CONSUMER.CREATE.KV_desired-state.X.$KV.desired-state.dev-a.>",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.device-dev-a",
    "$JS.API.CONSUMER.DURABLE.CREATE.KV_desired-state.device-dev-a",
    "$JS.API.CONSUMER.MSG.NEXT.KV_desired-state.device-dev-b",
    "$JS.FC.KV_desired-state.device-dev-a.1",
    "$JS.ACK.KV_desired-state.device-dev-b.1.1.1.1.0",
    "$KV.desired-state.dev-a.default.web", // only the operator writes desired state
    "$KV.fleet-deployments.default.web",
    "$KV.device-state.state.>",
    "device-commands.dev-a.restart", // it answers commands, it does not send them
    "device-sessions.dev-a.mia-1.abcdef0123456789.ctl", // nor writes the requester's side
    "device-sessions.dev-a.mia-1.abcdef0123456789.in",
    "_INBOX.abc",
  ];
  for (const s of forbiddenPub) assert.ok(!allowed(perms.pub.allow, s), `publish ${s}`);
  for (
    const s of [
      "_INBOX.>",
      "_INBOX.abc",
      ">",
      "$KV.>",
      "device-commands.>",
      "_INBOX_*.>",
      "device-sessions.>",
      "device-sessions.dev-a.mia-1.abcdef0123456789.out",
    ]
  ) {
    assert.ok(!allowed(perms.sub.allow, s), `subscribe ${s}`);
  }
});
