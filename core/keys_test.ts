import assert from "node:assert/strict";
import { InvalidIdentifierError } from "./ids.ts";
import { Buckets, commandSubject, type DeploymentRef, keys, parseKey, refKey } from "./keys.ts";

const REF: DeploymentRef = { namespace: "retail", name: "web" };

Deno.test("Buckets names the buckets of DESIGN.md §2 and the label registry", () => {
  assert.deepStrictEqual(Object.values(Buckets).sort(), [
    "desired-state",
    "device-heartbeat",
    "device-info",
    "device-labels",
    "device-state",
    "fleet-deployment-status",
    "fleet-deployments",
    "fleet-revisions",
  ]);
});

Deno.test("keys.revision() is <namespace>.<deployment>.<number>; revisionsOf() filters them", () => {
  assert.equal(keys.revision(REF, 7), "retail.web.7");
  assert.equal(keys.revisionsOf(REF), "retail.web.*");
  assert.throws(() => keys.revision({ namespace: "a.b", name: "web" }, 1), InvalidIdentifierError);
});

Deno.test("refKey() joins namespace and name", () => {
  assert.equal(refKey(REF), "retail.web");
});

Deno.test("keys.desiredState() is <deviceId>.<namespace>.<deployment> and parseKey inverts it", () => {
  const key = keys.desiredState("dev-1", REF);
  assert.equal(key, "dev-1.retail.web");
  assert.deepStrictEqual(parseKey.desiredState(key), { deviceId: "dev-1", ref: REF });
});

Deno.test("keys.desiredStateOfDevice() is a watch filter on one device", () => {
  assert.equal(keys.desiredStateOfDevice("dev-1"), "dev-1.>");
});

Deno.test("keys.deviceInfo() is info.<deviceId> and parseKey inverts it", () => {
  assert.equal(keys.deviceInfo("dev-1"), "info.dev-1");
  assert.equal(parseKey.deviceInfo(keys.deviceInfo("dev-1")), "dev-1");
});

Deno.test("keys.deviceState() is state.<deviceId>.<namespace>.<deployment> and parseKey inverts it", () => {
  const key = keys.deviceState("dev-1", REF);
  assert.equal(key, "state.dev-1.retail.web");
  assert.deepStrictEqual(parseKey.deviceState(key), { deviceId: "dev-1", ref: REF });
});

Deno.test("keys.deviceStatesOfDevice() is a watch filter on one device's states", () => {
  assert.equal(keys.deviceStatesOfDevice("dev-1"), "state.dev-1.>");
});

Deno.test("keys.deviceLabels() is labels.<deviceId> and parseKey inverts it", () => {
  assert.equal(keys.deviceLabels("dev-1"), "labels.dev-1");
  assert.equal(parseKey.deviceLabels(keys.deviceLabels("dev-1")), "dev-1");
  for (const key of ["labels", "labels.a.b", "info.a"]) {
    assert.equal(parseKey.deviceLabels(key), undefined, key);
  }
  assert.throws(() => keys.deviceLabels("*"), InvalidIdentifierError);
});

Deno.test("keys.heartbeat() is heartbeat.<deviceId> and parseKey inverts it", () => {
  assert.equal(keys.heartbeat("dev-1"), "heartbeat.dev-1");
  assert.equal(parseKey.heartbeat(keys.heartbeat("dev-1")), "dev-1");
});

Deno.test("keys.deployment() and keys.deploymentStatus() are <namespace>.<deployment>", () => {
  assert.equal(keys.deployment(REF), "retail.web");
  assert.equal(keys.deploymentStatus(REF), "retail.web");
  assert.deepStrictEqual(parseKey.deployment(keys.deployment(REF)), REF);
  assert.deepStrictEqual(parseKey.deployment(keys.deploymentStatus(REF)), REF);
});

Deno.test("keys for two namespaces with the same deployment name are distinct", () => {
  const a = { namespace: "team-a", name: "web" };
  const b = { namespace: "team-b", name: "web" };
  assert.notEqual(keys.desiredState("dev-1", a), keys.desiredState("dev-1", b));
  assert.notEqual(keys.deviceState("dev-1", a), keys.deviceState("dev-1", b));
  assert.notEqual(keys.deployment(a), keys.deployment(b));
  assert.notEqual(keys.deploymentStatus(a), keys.deploymentStatus(b));
  assert.deepStrictEqual(parseKey.desiredState(keys.desiredState("dev-1", b))?.ref, b);
});

const BAD_IDS = ["", "Dev", "dev.1", "dev*", "dev>", "dev 1", "-dev", "x".repeat(64)];

for (const bad of BAD_IDS) {
  Deno.test(`keys helpers reject device id ${JSON.stringify(bad)} with InvalidIdentifierError`, () => {
    const calls: (() => string)[] = [
      () => keys.desiredState(bad, REF),
      () => keys.desiredStateOfDevice(bad),
      () => keys.deviceInfo(bad),
      () => keys.deviceState(bad, REF),
      () => keys.deviceStatesOfDevice(bad),
      () => keys.heartbeat(bad),
      () => commandSubject(bad, "restart", "bob"),
    ];
    for (const call of calls) {
      assert.throws(
        call,
        (e: unknown) => e instanceof InvalidIdentifierError && e.what === "device id",
      );
    }
  });

  Deno.test(`keys helpers reject namespace and name ${JSON.stringify(bad)} with InvalidIdentifierError`, () => {
    for (
      const [ref, kind] of [
        [{ namespace: bad, name: "web" }, "namespace"],
        [{ namespace: "retail", name: bad }, "deployment name"],
      ] as const
    ) {
      const calls: (() => string)[] = [
        () => keys.desiredState("dev-1", ref),
        () => keys.deviceState("dev-1", ref),
        () => keys.deployment(ref),
        () => keys.deploymentStatus(ref),
      ];
      for (const call of calls) {
        assert.throws(call, (e: unknown) => e instanceof InvalidIdentifierError && e.what === kind);
      }
    }
  });
}

Deno.test("parseKey returns undefined for keys of the wrong shape", () => {
  for (const key of ["", "dev-1", "dev-1.retail", "dev-1.retail.web.x", "dev-1..web", ".a.b"]) {
    assert.equal(parseKey.desiredState(key), undefined, key);
  }
  for (const key of ["", "info", "info.", "info.a.b", "state.a", "heartbeat.a", "dev-1"]) {
    assert.equal(parseKey.deviceInfo(key), undefined, key);
  }
  for (
    const key of [
      "",
      "state.a.b",
      "state.a.b.c.d",
      "info.a.b.c",
      "a.b.c",
      "x.a.b.c",
      "state..b.c",
    ]
  ) {
    assert.equal(parseKey.deviceState(key), undefined, key);
  }
  for (const key of ["", "heartbeat", "heartbeat.", "heartbeat.a.b", "info.a"]) {
    assert.equal(parseKey.heartbeat(key), undefined, key);
  }
  for (const key of ["", "web", "a.b.c", ".web", "retail."]) {
    assert.equal(parseKey.deployment(key), undefined, key);
  }
});

Deno.test("commandSubject() is device-commands.<deviceId>.<verb>.<principal>", () => {
  assert.equal(commandSubject("dev-1", "restart", "bob"), "device-commands.dev-1.restart.bob");
  assert.equal(
    commandSubject("dev-1", "logs-tail2", "p-1"),
    "device-commands.dev-1.logs-tail2.p-1",
  );
  assert.throws(() => commandSubject("dev-1", "ping", "*"), /Invalid principal/);
});

Deno.test("commandSubject() rejects a verb that is not a single lowercase token", () => {
  for (const verb of ["", "Restart", "re.start", "*", ">", "2fa", "-x", "a b"]) {
    assert.throws(() => commandSubject("dev-1", verb, "bob"), /Invalid command verb/, verb);
  }
});

Deno.test("the agent-conflict key has two tokens: never a deployment's key", () => {
  assert.equal(keys.agentConflict("pi-1"), "pi-1.agent-conflict");
  assert.equal(parseKey.agentConflict("pi-1.agent-conflict"), "pi-1");
  assert.equal(parseKey.desiredState("pi-1.agent-conflict"), undefined);
  assert.equal(parseKey.agentConflict("pi-1.default.web"), undefined);
  assert.equal(parseKey.agentConflict("pi-1.other"), undefined);
  assert.equal(keys.agentConflicts(), "*.agent-conflict");
  assert.throws(() => keys.agentConflict("Pi 1"), InvalidIdentifierError);
});
