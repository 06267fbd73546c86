import assert from "node:assert/strict";
import {
  FINAL_BATCH,
  neededHealthy,
  progressivePolicy,
  resolveCount,
  Rollout,
  rolloutWarnings,
} from "./rollout_policy.ts";
import { API_VERSION, parseDeploymentManifest } from "./deployment.ts";
import { WireFormatError } from "./errors.ts";
import { parseDuration } from "./duration.ts";

function manifest(rollout: unknown): unknown {
  return {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name: "web" },
    spec: {
      targetSelector: { matchLabels: { env: "prod" } },
      score: { type: "PodmanV0", data: { services: [{ name: "web", image: "nginx:1.27" }] } },
      rollout,
    },
  };
}

function refusal(rollout: unknown): string {
  try {
    parseDeploymentManifest(manifest(rollout), "web.yaml");
  } catch (error) {
    assert.ok(error instanceof WireFormatError, String(error));
    return error.message;
  }
  assert.fail(`accepted ${JSON.stringify(rollout)}`);
}

const PROGRESSIVE = {
  strategy: "Progressive",
  batches: [
    { limit: 1, selector: { matchLabels: { ring: "canary" } } },
    { limit: "50%", approval: "Manual" },
  ],
  successThreshold: "90%",
  maxFailures: "10%",
  bake: "15m",
  deviceTimeout: "20m",
  disruptionBudget: { groupBy: ["site"], maxUnavailable: "25%" },
  onFailure: "Pause",
};

Deno.test("parseDeploymentManifest() takes a Progressive rollout with every field", () => {
  const deployment = parseDeploymentManifest(manifest(PROGRESSIVE), "web.yaml");
  assert.deepEqual(deployment.spec.rollout, PROGRESSIVE);
});

Deno.test("an Immediate or absent rollout stays {strategy: Immediate}, with no progressive defaults", () => {
  assert.deepEqual(Rollout.parse({}), { strategy: "Immediate" });
  const deployment = parseDeploymentManifest(manifest(undefined), "web.yaml");
  assert.deepEqual(deployment.spec.rollout, { strategy: "Immediate" });
  assert.equal(progressivePolicy(deployment.spec.rollout), undefined);
});

Deno.test("progressivePolicy() applies the defaults and adds the implicit final batch", () => {
  const policy = progressivePolicy(
    Rollout.parse({ strategy: "Progressive", batches: [{ limit: 1 }] }),
  );
  assert.deepEqual(policy, {
    batches: [{ limit: 1, approval: "Auto" }, FINAL_BATCH],
    successThresholdPercent: 100,
    bakeMs: 0,
    deviceTimeoutMs: 10 * 60_000,
    onFailure: "Rollback",
  });
  const full = progressivePolicy(Rollout.parse(PROGRESSIVE))!;
  assert.equal(full.bakeMs, 15 * 60_000);
  assert.equal(full.deviceTimeoutMs, 20 * 60_000);
  assert.equal(full.batches[1]!.approval, "Manual");
  assert.equal(full.successThresholdPercent, 90);
  assert.equal(full.maxFailures, "10%");
});

Deno.test("parseDeploymentManifest() refuses bad rollout values, naming the value and the rule", () => {
  const cases: [unknown, RegExp][] = [
    [
      { ...PROGRESSIVE, bake: "15 minutes" },
      /rollout\.bake: "15 minutes" is not a duration: write a whole number followed by s, m, h or d/,
    ],
    [{ ...PROGRESSIVE, deviceTimeout: "1w" }, /rollout\.deviceTimeout: "1w" is not a duration/],
    [
      { ...PROGRESSIVE, batches: [{ limit: 0 }] },
      /limit 0: write a whole number of devices \(at least 1\) or a percentage from 1% to 100%/,
    ],
    [{ ...PROGRESSIVE, batches: [{ limit: "110%" }] }, /limit "110%"/],
    [{ ...PROGRESSIVE, batches: [{ limit: "ten" }] }, /limit "ten"/],
    [{ ...PROGRESSIVE, batches: [{ limit: 2.5 }] }, /limit 2.5/],
    [
      { ...PROGRESSIVE, successThreshold: "0%" },
      /successThreshold "0%": write a percentage from 1% to 100%/,
    ],
    [{ ...PROGRESSIVE, successThreshold: "90" }, /successThreshold "90"/],
    [
      { ...PROGRESSIVE, maxFailures: -1 },
      /maxFailures -1: write a whole number of devices \(at least 0\)/,
    ],
    [
      { ...PROGRESSIVE, disruptionBudget: { groupBy: ["site"], maxUnavailable: 0 } },
      /maxUnavailable 0/,
    ],
    [{ ...PROGRESSIVE, onFailure: "Ignore" }, /rollout\.onFailure/],
    [{ ...PROGRESSIVE, batches: [{ limit: 1, approval: "Yes" }] }, /batches\[0\]\.approval/],
    [
      { strategy: "Immediate", batches: [{ limit: 1 }] },
      /rollout\.batches: batches applies only to strategy Progressive, and this rollout's strategy is Immediate/,
    ],
    [
      { strategy: "Progressive" },
      /rollout\.batches: strategy Progressive needs at least one batch/,
    ],
    [{ strategy: "Canary" }, /rollout\.strategy/],
  ];
  for (const [rollout, expected] of cases) {
    assert.match(refusal(rollout), expected, JSON.stringify(rollout));
  }
});

Deno.test("parseDeploymentManifest() refuses a typo in a rollout field with its path", () => {
  const typo = { ...PROGRESSIVE, batches: [{ limit: 1, aproval: "Manual" }], bakeTime: "1m" };
  const message = refusal(typo);
  assert.match(message, /spec\.rollout\.batches\[0\]\.aproval: unknown field/);
  assert.match(message, /spec\.rollout\.bakeTime: unknown field/);
});

Deno.test("resolveCount() takes counts as they are and rounds percentages as asked", () => {
  assert.equal(resolveCount(5, 3, "up"), 3);
  assert.equal(resolveCount(5, 30, "up"), 5);
  assert.equal(resolveCount("10%", 15, "up"), 2);
  assert.equal(resolveCount("10%", 15, "down"), 1);
  assert.equal(resolveCount("30%", 10, "up"), 3, "no floating point residue");
  assert.equal(resolveCount("100%", 7, "down"), 7);
  assert.equal(neededHealthy(9, 90), 9);
  assert.equal(neededHealthy(10, 90), 9);
});

Deno.test("rolloutWarnings() says when a batch is so small its threshold is effectively 100 %", () => {
  const rollout = Rollout.parse({
    strategy: "Progressive",
    batches: [{ limit: 3 }, { limit: "10%" }, { limit: "50%" }],
    successThreshold: "90%",
  });
  assert.deepEqual(rolloutWarnings(rollout), [
    "batch 1 has 3 devices: a successThreshold of 90% of 3 is 3 (rounded up), so every device " +
    "must succeed; make the batch at least 10 devices or lower the threshold",
  ]);
  // Sized against 40 devices: batch 2 brings the rollout to 4 (10 %), one more device.
  assert.deepEqual(rolloutWarnings(rollout, 40).map((w) => w.slice(0, 41)), [
    "batch 1 has 3 devices: a successThreshold",
    "batch 2 has 1 device (10% of 40 devices):",
  ]);
  assert.deepEqual(rolloutWarnings(rollout, 1000).length, 1, "100 and 500 devices are enough");
});

Deno.test("rolloutWarnings() says nothing at 100 %, for Immediate, or for sizes it cannot know", () => {
  assert.deepEqual(
    rolloutWarnings(Rollout.parse({ strategy: "Progressive", batches: [{ limit: 1 }] })),
    [],
  );
  assert.deepEqual(rolloutWarnings(Rollout.parse({})), []);
  const unsized = Rollout.parse({
    strategy: "Progressive",
    successThreshold: "80%",
    batches: [
      { limit: "5%" },
      { limit: "50%", selector: { matchLabels: { site: "a" } } },
      { limit: 2, selector: { matchLabels: { site: "b" } } },
    ],
  });
  assert.deepEqual(rolloutWarnings(unsized).map((w) => w.slice(0, 20)), ["batch 3 has 2 device"]);
});

Deno.test("parseDuration() reads seconds, minutes, hours and days, and nothing else", () => {
  assert.equal(parseDuration("0s"), 0);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("15m"), 900_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  for (const text of ["", "15", "1.5h", "-1m", "1w", "10 m", "1h30m"]) {
    assert.equal(parseDuration(text), undefined, text);
  }
});

Deno.test("parseDeploymentManifest() takes spec.minReadySeconds, a whole number of seconds", () => {
  const base = manifest(undefined) as { spec: Record<string, unknown> };
  const deployment = parseDeploymentManifest(
    { ...base, spec: { ...base.spec, minReadySeconds: 30 } },
    "web.yaml",
  );
  assert.equal(deployment.spec.minReadySeconds, 30);
  assert.throws(
    () => parseDeploymentManifest({ ...base, spec: { ...base.spec, minReadySeconds: -1 } }, "w"),
    /spec\.minReadySeconds/,
  );
});
