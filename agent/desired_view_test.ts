import assert from "node:assert/strict";
import {
  type DeploymentRef,
  type DesiredEntry,
  type DesiredState,
  revisionHash,
  UNKNOWN_GENERATION,
} from "../core/mod.ts";
import { DesiredView, toEntry } from "./desired_view.ts";

const DEVICE = "pi-01";
const GRACE_MS = 60_000;
const T0 = 1_700_000_000_000;
const WEB: DeploymentRef = { namespace: "default", name: "web" };

/** A desired-state value as the operator writes it. */
function desired(
  name: string,
  options: { namespace?: string; generation?: number; image?: string; type?: string } = {},
): string {
  return JSON.stringify({
    namespace: options.namespace ?? "default",
    name,
    generation: options.generation ?? 1,
    score: {
      type: options.type ?? "PodmanV0",
      data: { services: [{ name, image: options.image ?? `localhost/${name}:1` }] },
    },
  });
}

const key = (name: string, namespace = "default") => `${DEVICE}.${namespace}.${name}`;

/** A view that has completed its first read with `names` in it. */
function completedView(names: string[], now = T0): DesiredView {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.readStarted();
  for (const name of names) assert.equal(view.put(key(name), desired(name)), undefined);
  view.readComplete(now);
  return view;
}

function assertError(entry: DesiredEntry): string {
  assert.ok("error" in entry, `expected an error entry, got ${JSON.stringify(entry)}`);
  return entry.error;
}

Deno.test("DesiredView retains everything observed before the first complete read", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  assert.equal(view.complete, false);
  view.put(key("web"), desired("web"));
  // Far beyond the grace period: without a complete read nothing is known to be gone.
  const retained = view.retained(["default.web", "default.old", "other.thing"], T0 + 10 * GRACE_MS);
  assert.deepEqual([...retained].sort(), ["default.old", "other.thing"]);
});

Deno.test("DesiredView.put() adds an entry and readComplete() marks the read complete", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.readStarted();
  assert.equal(view.put(key("web"), desired("web", { generation: 3 })), undefined);
  const entry = view.entries().get("default.web");
  assert.ok(entry && "score" in entry);
  assert.equal(entry.generation, 3);
  assert.deepEqual(entry.ref, WEB);
  assert.equal(view.rawValues().get("default.web"), desired("web", { generation: 3 }));
  assert.equal(view.complete, false);
  view.readComplete(T0);
  assert.equal(view.complete, true);
  assert.deepEqual([...view.entries().keys()], ["default.web"]);
});

Deno.test("DesiredView.put() of a new value replaces the entry; the same value keeps it", () => {
  const view = completedView(["web"]);
  const before = view.entries().get("default.web");
  view.put(key("web"), desired("web"));
  assert.equal(view.entries().get("default.web"), before, "an identical value is not re-parsed");
  view.put(key("web"), desired("web", { generation: 2, image: "localhost/web:2" }));
  const after = view.entries().get("default.web");
  assert.ok(after && "score" in after);
  assert.equal(after.generation, 2);
  assert.equal(after.score.data.services[0]?.image, "localhost/web:2");
});

Deno.test("DesiredView.put() keeps namespaces apart", () => {
  const view = completedView([]);
  view.put(key("web", "team-a"), desired("web", { namespace: "team-a" }));
  view.put(key("web", "team-b"), desired("web", { namespace: "team-b" }));
  assert.deepEqual([...view.entries().keys()].sort(), ["team-a.web", "team-b.web"]);
});

Deno.test("DesiredView.put() returns a problem for a key of another device or of the wrong shape", () => {
  const view = completedView([]);
  for (
    const bad of ["pi-02.default.web", "pi-01.default", "pi-01.default.web.extra", "pi-01..web"]
  ) {
    const problem = view.put(bad, desired("web"));
    assert.ok(problem, `a problem for ${bad}`);
    assert.equal(problem.key, bad);
    assert.match(problem.reason, /<deviceId>\.<namespace>\.<deployment>/);
  }
  assert.equal(view.entries().size, 0);
});

Deno.test("DesiredView.delete() ignores a key of another device", () => {
  const view = completedView(["web"]);
  view.delete("pi-02.default.web");
  assert.ok(view.entries().has("default.web"));
});

Deno.test("DesiredView.delete() removes the entry, and the containers are not retained", () => {
  const view = completedView(["web", "api"]);
  view.delete(key("web"));
  assert.deepEqual([...view.entries().keys()], ["default.api"]);
  assert.equal(view.rawValues().has("default.web"), false);
  assert.deepEqual([...view.retained(["default.web", "default.api"], T0)], []);
});

Deno.test("DesiredView keeps a deployment missing from a complete read for the grace period only", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.seed(new Map([["default.web", desired("web")], ["default.api", desired("api")]]));
  view.readStarted();
  view.put(key("api"), desired("api"));
  view.readComplete(T0);

  assert.deepEqual([...view.entries().keys()], ["default.api"]);
  assert.equal(view.rawValues().has("default.web"), false, "the cache no longer holds it");
  assert.deepEqual([...view.retained(["default.web", "default.api"], T0)], ["default.web"]);
  assert.deepEqual([...view.retained(["default.web"], T0 + GRACE_MS - 1)], ["default.web"]);
  assert.deepEqual([...view.retained(["default.web"], T0 + GRACE_MS)], []);

  // A later complete read without it does not restart the grace period.
  view.readStarted();
  view.put(key("api"), desired("api"));
  view.readComplete(T0 + GRACE_MS / 2);
  assert.deepEqual([...view.retained(["default.web"], T0 + GRACE_MS)], []);
});

Deno.test("DesiredView: a deployment that comes back within the grace period is desired again", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.seed(new Map([["default.web", desired("web")]]));
  view.readStarted();
  view.readComplete(T0);
  assert.deepEqual([...view.retained(["default.web"], T0)], ["default.web"]);

  view.put(key("web"), desired("web"));
  assert.ok(view.entries().has("default.web"));
  assert.deepEqual([...view.retained(["default.web"], T0 + 2 * GRACE_MS)], []);
  // Gone again in a later read: a new grace period starts then, not at T0.
  view.readStarted();
  view.readComplete(T0 + 3 * GRACE_MS);
  assert.deepEqual([...view.retained(["default.web"], T0 + 3 * GRACE_MS)], ["default.web"]);
});

Deno.test("DesiredView.readStarted() resets what counts as seen, live updates included", () => {
  const view = completedView(["web", "api"]);
  // Live updates after the first complete read.
  view.put(key("web"), desired("web", { generation: 2 }));
  view.put(key("web"), desired("web", { generation: 3 }));

  // The watch restarts (e.g. the bucket was rebuilt) and the new read lacks web.
  view.readStarted();
  view.put(key("api"), desired("api"));
  view.readComplete(T0 + 1000);

  assert.deepEqual([...view.entries().keys()], ["default.api"]);
  assert.deepEqual([...view.retained(["default.web"], T0 + 1000)], ["default.web"]);
  assert.deepEqual([...view.retained(["default.web"], T0 + 1000 + GRACE_MS)], []);
});

Deno.test("DesiredView.settled() forgets the grace timer of a deployment whose containers are gone", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.seed(new Map([["default.web", desired("web")]]));
  view.readStarted();
  view.readComplete(T0);
  view.settled("default.web");
  assert.deepEqual([...view.retained(["default.web"], T0)], []);
});

Deno.test("DesiredView.seed() loads the cache, which does not count as a complete read", () => {
  const view = new DesiredView(DEVICE, GRACE_MS);
  view.seed(
    new Map([
      ["default.web", desired("web")],
      ["team-a.api", desired("api", { namespace: "team-a", generation: 4 })],
      ["not-a-ref", desired("x")],
    ]),
  );
  assert.equal(view.complete, false);
  assert.deepEqual([...view.entries().keys()].sort(), ["default.web", "team-a.api"]);
  assert.equal(view.entries().get("team-a.api")?.generation, 4);
  assert.deepEqual([...view.retained(["default.old"], T0)], ["default.old"]);
});

Deno.test("toEntry() turns malformed JSON into an error entry at UNKNOWN_GENERATION", () => {
  const entry = toEntry(WEB, "{not json");
  assert.equal(entry.generation, UNKNOWN_GENERATION);
  assert.equal(UNKNOWN_GENERATION, 0);
  const message = assertError(entry);
  assert.match(message, /^Invalid desired state: not valid JSON/);
  assert.ok(!message.includes("\n"));
});

Deno.test("toEntry() keeps the generation of a value that parses as JSON but not as DesiredState", () => {
  const entry = toEntry(WEB, JSON.stringify({ namespace: "default", name: "web", generation: 7 }));
  assert.equal(entry.generation, 7);
  assert.match(assertError(entry), /desired state.*score/);
});

Deno.test("toEntry() names an unknown workload type", () => {
  const entry = toEntry(WEB, desired("web", { type: "WasmV9", generation: 5 }));
  assert.equal(entry.generation, 5);
  const message = assertError(entry);
  assert.match(message, /unknown workload type "WasmV9"/);
  assert.match(message, /PodmanV0/);
});

Deno.test("toEntry() turns a valid value into a runnable score with defaults filled", () => {
  const entry = toEntry(WEB, desired("web", { generation: 2 }));
  assert.ok("score" in entry, JSON.stringify(entry));
  assert.deepEqual(entry, {
    ref: WEB,
    generation: 2,
    score: {
      type: "PodmanV0",
      data: {
        services: [{
          name: "web",
          image: "localhost/web:1",
          ports: [],
          env: [],
          volumes: [],
          restartPolicy: "unless-stopped",
        }],
      },
    },
    // The workload as the control plane sent it, before this agent filled in defaults.
    revision: revisionHash({
      type: "PodmanV0",
      data: { services: [{ name: "web", image: "localhost/web:1" }] },
    }),
  });
});

Deno.test("toEntry() takes the deployment's minReadySeconds, and names the revision of a workload it cannot run", () => {
  const raw = JSON.parse(desired("web")) as DesiredState;
  const entry = toEntry(WEB, JSON.stringify({ ...raw, minReadySeconds: 30 }));
  assert.ok("score" in entry);
  assert.equal(entry.minReadyMs, 30_000);
  assert.equal("minReadyMs" in toEntry(WEB, desired("web")), false, "none: the agent's own");

  const unknown = toEntry(WEB, desired("web", { type: "WasmV9" }));
  assert.ok("error" in unknown);
  assert.equal(unknown.revision, revisionHash({ type: "WasmV9", data: raw.score.data }));
});

Deno.test("toEntry() rejects a value whose namespace or name differs from its key", () => {
  const otherName = toEntry(WEB, desired("api", { generation: 3 }));
  assert.equal(otherName.generation, 3);
  assert.match(assertError(otherName), /default\/api.*stored under default\/web/);

  const otherNamespace = toEntry(WEB, desired("web", { namespace: "team-a" }));
  assert.match(assertError(otherNamespace), /team-a\/web.*stored under default\/web/);
});
