import assert from "node:assert/strict";
import {
  type DeviceInstances,
  InstanceConflict,
  InstanceId,
  instanceRole,
  judgeInstances,
  liveInstances,
  newInstanceId,
  recordSighting,
} from "./agent_instances.ts";

const T0 = Date.UTC(2026, 5, 1, 12);
const S = 1_000;
const STALE = 90 * S;

/** Heartbeats in order: [instance, seconds after T0]. */
function seen(...beats: [string, number][]): DeviceInstances {
  let instances: DeviceInstances = new Map();
  for (const [id, at] of beats) instances = recordSighting(instances, id, T0 + at * S);
  return instances;
}

function judge(instances: DeviceInstances, now: number, previous?: InstanceConflict) {
  return judgeInstances(
    "pi-1",
    liveInstances(instances, T0 + now * S, STALE),
    previous,
    T0 + now * S,
  );
}

Deno.test("newInstanceId is a valid, fresh instance id", () => {
  const ids = new Set(Array.from({ length: 100 }, newInstanceId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.ok(InstanceId.safeParse(id).success, id);
});

Deno.test("recordSighting keeps the first sighting and the latest one", () => {
  const instances = seen(["aaaaaa", 0], ["aaaaaa", 30], ["aaaaaa", 20]);
  assert.deepEqual(instances.get("aaaaaa"), { firstSeen: T0, lastSeen: T0 + 30 * S });
});

Deno.test("one agent, however long it runs, is no conflict", () => {
  assert.equal(judge(seen(["aaaaaa", 0], ["aaaaaa", 30], ["aaaaaa", 60]), 60), undefined);
});

Deno.test("a restarted agent is no conflict: the old instance is never seen after the new one", () => {
  const instances = seen(["aaaaaa", 0], ["aaaaaa", 30], ["bbbbbb", 40], ["bbbbbb", 70]);
  assert.equal(judge(instances, 70), undefined, "old instance still within the stale window");
});

Deno.test("two agents heartbeating in turn: the one seen first owns, the newer stands by", () => {
  const instances = seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30]);
  const conflict = judge(instances, 30);
  assert.deepEqual(conflict, {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: new Date(T0 + 30 * S).toISOString(),
  });
  assert.ok(InstanceConflict.safeParse(conflict).success);
});

Deno.test("a conflict ends when the standby instance stops: its heartbeats go stale", () => {
  const instances = seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30], ["aaaaaa", 120]);
  assert.ok(judge(instances, 100), "b seen at 10 s is live until 100 s");
  assert.equal(judge(instances, 101), undefined);
});

Deno.test("a conflict ends when the owner stops; the one left is alone", () => {
  const instances = seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30], ["bbbbbb", 130]);
  assert.equal(judge(instances, 121), undefined);
});

Deno.test("the owner stays the owner across judgements, even when not seen first (operator restart)", () => {
  const previous = judge(seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30]), 30)!;
  // After a restart the operator happens to see b first.
  const conflict = judge(seen(["bbbbbb", 200], ["aaaaaa", 210], ["bbbbbb", 230]), 230, previous);
  assert.equal(conflict?.owner, "aaaaaa");
  assert.deepEqual(conflict?.standby, ["bbbbbb"]);
  assert.equal(conflict?.since, previous.since, "an unchanged decision keeps its date");
});

Deno.test("a third instance joins the standby list; the owner does not move", () => {
  const previous = judge(seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30]), 30)!;
  const instances = seen(["aaaaaa", 0], ["bbbbbb", 10], ["aaaaaa", 30], ["cccccc", 35], [
    "aaaaaa",
    60,
  ]);
  const conflict = judge(instances, 60, previous);
  assert.equal(conflict?.owner, "aaaaaa");
  assert.deepEqual(conflict?.standby, ["bbbbbb", "cccccc"]);
  assert.notEqual(conflict?.since, previous.since);
});

Deno.test("a previous owner that stopped hands over to the instance seen first of the rest", () => {
  const previous: InstanceConflict = {
    deviceId: "pi-1",
    owner: "zzzzzz",
    standby: ["aaaaaa"],
    since: new Date(T0).toISOString(),
  };
  const conflict = judge(seen(["bbbbbb", 0], ["aaaaaa", 5], ["bbbbbb", 30]), 30, previous);
  assert.equal(conflict?.owner, "bbbbbb");
  assert.deepEqual(conflict?.standby, ["aaaaaa"]);
});

Deno.test("instanceRole: owner, standby, or alone for an instance the decision does not name", () => {
  const conflict: InstanceConflict = {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: new Date(T0).toISOString(),
  };
  assert.equal(instanceRole(undefined, "aaaaaa"), "alone");
  assert.equal(instanceRole(conflict, "aaaaaa"), "owner");
  assert.equal(instanceRole(conflict, "bbbbbb"), "standby");
  assert.equal(instanceRole(conflict, "cccccc"), "alone", "a restarted agent is judged afresh");
});

Deno.test("InstanceConflict and InstanceId refuse what they cannot hold", () => {
  assert.equal(InstanceId.safeParse("ABCDEF").success, false);
  assert.equal(InstanceId.safeParse("abc").success, false);
  assert.equal(
    InstanceConflict.safeParse({ deviceId: "pi-1", owner: "aaaaaa", standby: [], since: "x" })
      .success,
    false,
  );
});
