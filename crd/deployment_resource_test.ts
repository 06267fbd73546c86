import assert from "node:assert/strict";
import {
  ACCEPTED,
  acceptedCondition,
  DeploymentResourceStatus,
  refusalMessage,
  refusalOf,
} from "./deployment_resource.ts";
import { Condition, kubeTime } from "./device_resource.ts";

const T0 = Date.parse("2026-02-01T06:00:00Z");
const LATER = T0 + 60_000;
const PROBLEM = 'spec.score.data.services[0].env[0].value: environment variable "BIG" is ' +
  "140004 bytes as NAME=value";

Deno.test("acceptedCondition() writes nothing for a valid Deployment that was never refused", () => {
  assert.equal(acceptedCondition(1, undefined, undefined, T0, undefined), undefined);
  assert.equal(acceptedCondition(7, undefined, 6, T0, undefined), undefined);
});

Deno.test("acceptedCondition() refuses with the problem, the generation and what devices keep", () => {
  const first = acceptedCondition(1, PROBLEM, undefined, T0, undefined);
  assert.deepEqual(first, {
    type: ACCEPTED,
    status: "False",
    reason: "InvalidSpec",
    message: `generation 1 refused: ${PROBLEM}; no earlier generation was accepted, so no ` +
      "device runs this deployment until a valid one is applied",
    lastTransitionTime: kubeTime(T0),
    observedGeneration: 1,
  });
  assert.ok(Condition.safeParse(first).success);

  const update = acceptedCondition(3, PROBLEM, 2, T0, undefined);
  assert.equal(
    update?.message,
    `generation 3 refused: ${PROBLEM}; devices keep generation 2 until a valid one is applied`,
  );
});

Deno.test("acceptedCondition() does not rewrite a condition that already says it (operator restart)", () => {
  const refused = acceptedCondition(3, PROBLEM, 2, T0, undefined)!;
  assert.equal(acceptedCondition(3, PROBLEM, 2, LATER, refused), undefined);
  const accepted = acceptedCondition(4, undefined, 3, T0, refused)!;
  assert.equal(acceptedCondition(4, undefined, 4, LATER, accepted), undefined);
});

Deno.test("acceptedCondition() turns True once fixed, moving lastTransitionTime only when the status changes", () => {
  const refused = acceptedCondition(2, PROBLEM, 1, T0, undefined)!;
  // Another refused generation: a new message, the same transition time.
  const again = acceptedCondition(3, "spec.score.type: unknown", 1, LATER, refused)!;
  assert.equal(again.lastTransitionTime, kubeTime(T0));
  assert.equal(again.observedGeneration, 3);

  const fixed = acceptedCondition(4, undefined, 1, LATER, again)!;
  assert.deepEqual(fixed, {
    type: ACCEPTED,
    status: "True",
    reason: "Valid",
    message: "generation 4 accepted",
    lastTransitionTime: kubeTime(LATER),
    observedGeneration: 4,
  });
  // Once it carries the condition, each new generation updates it, so it never speaks of an old one.
  const next = acceptedCondition(5, undefined, 4, LATER + 60_000, fixed)!;
  assert.equal(next.observedGeneration, 5);
  assert.equal(next.lastTransitionTime, kubeTime(LATER));
});

Deno.test("refusalMessage() cuts a long list of problems to fit a condition message, keeping what devices keep", () => {
  const message = refusalMessage(2, "x".repeat(100_000), 1);
  assert.ok(message.length <= 32_768, `${message.length} characters`);
  assert.ok(message.startsWith("generation 2 refused: xxx"));
  assert.ok(message.endsWith("x…; devices keep generation 1 until a valid one is applied"));
  assert.ok(
    Condition.safeParse(acceptedCondition(2, "x".repeat(100_000), 1, T0, undefined))
      .success,
  );
});

Deno.test("refusalOf() reads the operator's refusal of the current generation only", () => {
  const refused = acceptedCondition(3, PROBLEM, 2, T0, undefined)!;
  assert.equal(refusalOf([refused], 3), refused.message);
  assert.equal(refusalOf([refused], 4), undefined, "a newer generation is not judged yet");
  assert.equal(refusalOf(undefined, 3), undefined);
  const accepted = acceptedCondition(4, undefined, 3, T0, refused)!;
  assert.equal(refusalOf([accepted], 4), undefined);
});

Deno.test("DeploymentResourceStatus reads a status with only conditions (refused from its first generation)", () => {
  const condition = acceptedCondition(1, PROBLEM, undefined, T0, undefined)!;
  assert.deepEqual(DeploymentResourceStatus.parse({ conditions: [condition] }), {
    conditions: [condition],
  });
});
