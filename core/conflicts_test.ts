import assert from "node:assert/strict";
import {
  compareClaimants,
  conflictMessage,
  decidePortConflicts,
  foreseePortConflicts,
  type PortClaimant,
  publishedPorts,
} from "./conflicts.ts";
import { API_VERSION, Deployment } from "./deployment.ts";
import { identifierProblem } from "./ids.ts";
import type { Labels, LabelSelector } from "./selector.ts";
import { containerName } from "./planner.ts";
import { formatHostPort, type HostPort, parsePort, PodmanV0Data, portsOverlap } from "./score.ts";

function ports(...texts: string[]): HostPort[] {
  return texts.map(parsePort);
}

function claimant(
  name: string,
  createdAt: string | undefined,
  wants: string[] | undefined,
  holds?: string[],
): PortClaimant {
  return {
    ref: { namespace: "default", name },
    createdAt,
    wants: wants && ports(...wants),
    holds: holds && ports(...holds),
  };
}

/** `<blocked> by <holder>: <port>` per blocked deployment, in order. */
function decide(claimants: PortClaimant[]): string[] {
  return decidePortConflicts(claimants).map((c) =>
    `${c.ref.name} by ${c.by.name}: ${formatHostPort(c.port)}`
  );
}

const T1 = "2030-01-01T00:00:01Z";
const T2 = "2030-01-01T00:00:02Z";
const T3 = "2030-01-01T00:00:03Z";

Deno.test("publishedPorts() lists every service's host ports", () => {
  const score = {
    type: "PodmanV0",
    data: {
      services: [
        { name: "web", image: "web:1", ports: ["8080:80", "127.0.0.1:9090:90"] },
        { name: "dns", image: "dns:1", ports: ["5353:53/udp"] },
        { name: "worker", image: "worker:1" },
      ],
    },
  };
  assert.deepStrictEqual(publishedPorts(score), [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" },
    { hostIp: "127.0.0.1", hostPort: 9090, containerPort: 90, protocol: "tcp" },
    { hostPort: 5353, containerPort: 53, protocol: "udp" },
  ]);
});

Deno.test("publishedPorts() knows no ports of an unknown or malformed workload", () => {
  assert.deepStrictEqual(publishedPorts({ type: "ComposeV9", data: { ports: ["8080:80"] } }), []);
  assert.deepStrictEqual(publishedPorts({ type: "PodmanV0", data: { services: "web" } }), []);
  assert.deepStrictEqual(
    publishedPorts({
      type: "PodmanV0",
      data: { services: [{ name: "w", image: "w", ports: ["x"] }] },
    }),
    [],
  );
});

Deno.test("portsOverlap() needs the same protocol, host port and an overlapping host IP", () => {
  const overlap = (a: string, b: string) => portsOverlap(parsePort(a), parsePort(b));
  assert.equal(overlap("8080:80", "8080:8080"), true, "container ports do not matter");
  assert.equal(overlap("8080:80", "8080:80/tcp"), true);
  assert.equal(overlap("8080:80", "8080:80/udp"), false, "another protocol");
  assert.equal(overlap("8080:80", "8081:80"), false, "another host port");
  assert.equal(overlap("8080:80", "10.0.0.1:8080:80"), true, "no IP binds every address");
  assert.equal(overlap("0.0.0.0:8080:80", "10.0.0.1:8080:80"), true, "0.0.0.0 binds every address");
  assert.equal(overlap("10.0.0.1:8080:80", "0.0.0.0:8080:80"), true);
  assert.equal(overlap("10.0.0.1:8080:80", "10.0.0.1:8080:80"), true, "the same IP");
  assert.equal(overlap("10.0.0.1:8080:80", "10.0.0.2:8080:80"), false, "two specific IPs");
});

Deno.test("conflictMessage() names the port with its protocol and the holding deployment", () => {
  const web = { namespace: "shop", name: "web" };
  assert.equal(
    conflictMessage(parsePort("8080:80"), web),
    "port 8080/tcp is already used by deployment shop/web",
  );
  assert.equal(
    conflictMessage(parsePort("127.0.0.1:53:53/udp"), web),
    "port 127.0.0.1:53/udp is already used by deployment shop/web",
  );
});

Deno.test("compareClaimants() puts incumbents first, then creation time (unknown last), then namespace/name", () => {
  const sorted = (list: PortClaimant[]) =>
    [...list].sort(compareClaimants).map((c) => `${c.ref.namespace}/${c.ref.name}`);
  const at = (namespace: string, name: string, createdAt?: string, holds?: string[]) => ({
    ...claimant(name, createdAt, [], holds),
    ref: { namespace, name },
  });
  assert.deepStrictEqual(
    sorted([
      at("default", "unknown"),
      at("default", "young", T3),
      at("default", "old", T1),
      at("default", "incumbent", T3, []),
      at("b", "tie", T2),
      at("a", "tie", T2),
      at("a", "tia", T2),
    ]),
    [
      "default/incumbent",
      "default/old",
      "a/tia",
      "a/tie",
      "b/tie",
      "default/young",
      "default/unknown",
    ],
  );
});

Deno.test("decidePortConflicts() blocks the later of two new deployments on one port", () => {
  const claimants = [claimant("api", T2, ["8080:80"]), claimant("web", T1, ["8080:8080"])];
  assert.deepStrictEqual(decidePortConflicts(claimants), [{
    ref: { namespace: "default", name: "api" },
    port: { hostPort: 8080, containerPort: 80, protocol: "tcp" },
    by: { namespace: "default", name: "web" },
    message: "port 8080/tcp is already used by deployment default/web",
  }]);
  assert.deepStrictEqual(decide([...claimants].reverse()), ["api by web: 8080/tcp"]);
});

Deno.test("decidePortConflicts() lets deployments share a port number on other protocols or IPs", () => {
  assert.deepStrictEqual(
    decide([
      claimant("tcp", T1, ["53:53"]),
      claimant("udp", T2, ["53:53/udp"]),
      claimant("lan", T1, ["10.0.0.1:8080:80"]),
      claimant("vpn", T2, ["10.8.0.1:8080:80"]),
      claimant("none", T1, []),
      claimant("also-none", T2, []),
    ]),
    [],
  );
  assert.deepStrictEqual(
    decide([claimant("lan", T1, ["10.0.0.1:8080:80"]), claimant("all", T2, ["0.0.0.0:8080:80"])]),
    ["all by lan: 0.0.0.0:8080/tcp"],
  );
});

Deno.test("decidePortConflicts() keeps the incumbent when an older deployment starts selecting the device", () => {
  // web (older) gained the device by a label change; api was already there.
  assert.deepStrictEqual(
    decide([claimant("web", T1, ["8080:80"]), claimant("api", T2, ["8080:80"], ["8080:80"])]),
    ["web by api: 8080/tcp"],
  );
});

Deno.test("decidePortConflicts() admits a blocked deployment once its blocker is gone from the device", () => {
  // Deleted or retargeted, its desired state still on the device: still holding the port.
  assert.deepStrictEqual(
    decide([claimant("web", T1, ["8080:80"]), claimant("api", T2, undefined, ["8080:80"])]),
    ["web by api: 8080/tcp"],
  );
  // Its desired state removed.
  assert.deepStrictEqual(decide([claimant("web", T1, ["8080:80"])]), []);
});

Deno.test("decidePortConflicts() admits a blocked deployment once its blocker's new ports reach the device", () => {
  // api moves to 9090: its old desired state still holds 8080.
  assert.deepStrictEqual(
    decide([claimant("web", T2, ["8080:80"]), claimant("api", T1, ["9090:80"], ["8080:80"])]),
    ["web by api: 8080/tcp"],
  );
  assert.deepStrictEqual(
    decide([claimant("web", T2, ["8080:80"]), claimant("api", T1, ["9090:80"], ["9090:80"])]),
    [],
  );
});

Deno.test("decidePortConflicts() blocks an incumbent that moves to a port another incumbent holds", () => {
  // web (older) moves from 9090 to 8080 where api already runs: api is never touched.
  assert.deepStrictEqual(
    decide([
      claimant("web", T1, ["8080:80"], ["9090:80"]),
      claimant("api", T2, ["8080:80"], ["8080:80"]),
    ]),
    ["web by api: 8080/tcp"],
  );
});

Deno.test("decidePortConflicts() settles two incumbents on one port (state from before the rule) by creation order", () => {
  assert.deepStrictEqual(
    decide([
      claimant("api", T2, ["8080:80"], ["8080:80"]),
      claimant("web", T1, ["8080:80"], ["8080:80"]),
    ]),
    ["api by web: 8080/tcp"],
  );
});

Deno.test("decidePortConflicts() lets nothing conflict with a workload of unknown ports", () => {
  assert.deepStrictEqual(
    decide([
      claimant("future", T1, [], []),
      claimant("web", T2, ["8080:80"]),
      claimant("gone", T1, undefined, []),
    ]),
    [],
  );
});

Deno.test("decidePortConflicts() does not let a blocked deployment block others", () => {
  // both is blocked on 8080 by web, so its 9090 stays free for api.
  assert.deepStrictEqual(
    decide([
      claimant("web", T1, ["8080:80"]),
      claimant("both", T2, ["9090:90", "8080:80"]),
      claimant("api", T3, ["9090:90"]),
    ]),
    ["both by web: 8080/tcp"],
  );
});

Deno.test("decidePortConflicts() names the first conflicting port and the first holder in order", () => {
  assert.deepStrictEqual(
    decide([
      claimant("a", T1, ["8080:80"]),
      claimant("b", T2, ["9090:90"]),
      claimant("c", T3, ["9090:90", "8080:80"]),
      claimant("d", T3, ["9090:90"], ["9090:90"]),
    ]),
    ["b by d: 9090/tcp", "c by d: 9090/tcp"],
  );
});

Deno.test("decidePortConflicts() of one deployment or none blocks nothing", () => {
  assert.deepStrictEqual(decide([]), []);
  assert.deepStrictEqual(decide([claimant("web", T1, ["8080:80", "8080:80"], ["8080:80"])]), []);
});

Deno.test("containerName() of two deployments can never be the same: no part may contain '_'", () => {
  // With '_' allowed, (ns "a_b", deployment "c") and (ns "a", deployment "b_c") would collide.
  assert.equal(
    containerName("dev", { namespace: "a_b", name: "c" }, "web"),
    containerName("dev", { namespace: "a", name: "b_c" }, "web"),
  );
  for (const part of ["a_b", "b_c", "web_1"]) assert.notEqual(identifierProblem(part), undefined);
  // Every valid part is free of '_', so the name splits back into exactly its parts.
  const parts = ["pi-1", "shop", "web-2", "main"] as const;
  for (const part of parts) assert.equal(identifierProblem(part), undefined);
  const name = containerName(parts[0], { namespace: parts[1], name: parts[2] }, parts[3]);
  assert.deepStrictEqual(name.split("_"), ["fleet", ...parts]);
});

// --- foreseePortConflicts -----------------------------------------------------------------

function stored(
  name: string,
  ports: string[],
  createdAt?: string,
  selector: LabelSelector = { matchLabels: { site: "a" } },
): Deployment {
  return Deployment.parse({
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, ...(createdAt ? { creationTimestamp: createdAt } : {}) },
    spec: {
      targetSelector: selector,
      score: { type: "PodmanV0", data: { services: [{ name: "main", image: "img:1", ports }] } },
    },
  });
}

const DEVICES: [string, Labels][] = [
  ["pi-1", { site: "a" }],
  ["pi-2", { site: "a" }],
  ["pi-3", { site: "b" }],
];

/** `<port> by <holder> on <devices>` per foreseen conflict. */
function foresee(applied: Deployment, existing: Deployment[], devices = DEVICES): string[] {
  return foreseePortConflicts(applied, existing, devices).map((c) =>
    `${formatHostPort(c.port)} by ${c.by.namespace}/${c.by.name} on ${c.devices.join(",")}`
  );
}

Deno.test("foreseePortConflicts() names the holder of a port on each device the new deployment selects", () => {
  const web = stored("web", ["8080:80"], T1);
  assert.deepStrictEqual(foresee(stored("api", ["8080:8080"]), [web]), [
    "8080/tcp by default/web on pi-1,pi-2",
  ]);
  assert.deepStrictEqual(foreseePortConflicts(stored("api", ["8080:80"]), [web], DEVICES)[0]?.by, {
    namespace: "default",
    name: "web",
  });
  // Only where both run.
  const webB = stored("web", ["8080:80"], T1, { matchLabels: { site: "b" } });
  assert.deepStrictEqual(foresee(stored("api", ["8080:80"]), [webB]), []);
  const everywhere = stored("api", ["8080:80"], undefined, {});
  assert.deepStrictEqual(foresee(everywhere, [webB]), ["8080/tcp by default/web on pi-3"]);
});

Deno.test("foreseePortConflicts() sees nothing without a shared port", () => {
  const web = stored("web", ["8080:80", "10.0.0.1:9090:90"], T1);
  assert.deepStrictEqual(foresee(stored("api", []), [web]), []);
  assert.deepStrictEqual(foresee(stored("api", ["8080:80/udp", "10.0.0.2:9090:90"]), [web]), []);
  assert.deepStrictEqual(foresee(stored("api", ["8080:80"]), [], []), []);
});

Deno.test("foreseePortConflicts() of a re-applied deployment: the one running stays quiet, a refused one is told again", () => {
  const web = stored("web", ["8080:80"], T1);
  const api = stored("api", ["8080:80"], T2);
  assert.deepStrictEqual(foresee(web, [web, api]), []);
  assert.deepStrictEqual(foresee(api, [web, api]), ["8080/tcp by default/web on pi-1,pi-2"]);
});

Deno.test("foreseePortConflicts() of an older deployment moving onto a port a younger one runs on", () => {
  const web = stored("web", ["9090:80"], T1);
  const api = stored("api", ["8080:80"], T2);
  assert.deepStrictEqual(foresee(stored("web", ["8080:80"], T1), [web, api]), [
    "8080/tcp by default/api on pi-1,pi-2",
  ]);
});

Deno.test("foreseePortConflicts() does not count a deployment that is itself refused as running", () => {
  const web = stored("web", ["8080:80"], T1);
  const api = stored("api", ["8080:80", "9090:90"], T2);
  assert.deepStrictEqual(foresee(stored("dns", ["9090:90"], T3), [web, api]), []);
  assert.deepStrictEqual(foresee(stored("dns", ["8080:80", "9090:90"], T3), [web, api]), [
    "8080/tcp by default/web on pi-1,pi-2",
  ]);
});

Deno.test("a workload publishing one host port from two services is refused where it is written", () => {
  const data = (...ports: string[][]) => ({
    services: ports.map((p, i) => ({ name: `s${i}`, image: "localhost/x:1", ports: p })),
  });
  const refused = PodmanV0Data.safeParse(data(["8080:80"], ["127.0.0.1:8080:81"]));
  assert.equal(refused.success, false);
  assert.deepEqual(refused.error?.issues[0]?.path, ["services", 1, "ports", 0]);
  assert.match(
    refused.error?.issues[0]?.message ?? "",
    /host port 127\.0\.0\.1:8080\/tcp is already published by service "s0"/,
  );
  assert.equal(PodmanV0Data.safeParse(data(["8080:80"], ["8080:80/udp"])).success, true);
  assert.equal(
    PodmanV0Data.safeParse(data(["10.0.0.1:8080:80"], ["10.0.0.2:8080:80"])).success,
    true,
  );
  assert.equal(
    PodmanV0Data.safeParse(data(["8080:80", "8080:81"])).success,
    false,
    "one service twice",
  );
});
