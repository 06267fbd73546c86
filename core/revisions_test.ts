import assert from "node:assert/strict";
import {
  describeChange,
  recordRevision,
  type Revision,
  revisionHash,
  RevisionNotFoundError,
  undoTarget,
} from "./revisions.ts";
import type { ScoreEnvelope } from "./score.ts";
import { exitCodeOf } from "./errors.ts";

const T0 = Date.parse("2026-12-06T10:00:00Z");

function score(image: string, extra: Record<string, unknown> = {}): ScoreEnvelope {
  return { type: "PodmanV0", data: { services: [{ name: "web", image, ...extra }] } };
}

/** Applies each image in turn, as successive spec changes. */
function history(images: string[], keep?: number, pinned?: number[]): Revision[] {
  let revisions: Revision[] = [];
  images.forEach((image, i) => {
    revisions = recordRevision(revisions, {
      score: score(image),
      generation: i + 1,
      now: T0 + i * 60_000,
      ...(keep !== undefined ? { keep } : {}),
      ...(pinned !== undefined ? { pinned } : {}),
    }).revisions;
  });
  return revisions;
}

Deno.test("revisionHash() depends on the workload's content only, not on key order", () => {
  const a = { type: "PodmanV0", data: { services: [{ name: "web", image: "nginx:1" }] } };
  const b = { data: { services: [{ image: "nginx:1", name: "web" }] }, type: "PodmanV0" };
  assert.equal(revisionHash(a), revisionHash(b));
  assert.match(revisionHash(a), /^[0-9a-f]{16}$/);
  assert.notEqual(revisionHash(a), revisionHash(score("nginx:2")));
});

Deno.test("recordRevision() numbers each workload change, and a re-apply makes none", () => {
  const first = recordRevision([], { score: score("nginx:1"), generation: 1, now: T0 });
  assert.equal(first.created, true);
  assert.deepEqual(first.revision, {
    number: 1,
    hash: revisionHash(score("nginx:1")),
    createdAt: "2026-12-06T10:00:00.000Z",
    generation: 1,
    change: "first revision",
    score: score("nginx:1"),
  });
  const same = recordRevision(first.revisions, { score: score("nginx:1"), generation: 2, now: T0 });
  assert.equal(same.created, false);
  assert.equal(same.revision.number, 1);
  const next = recordRevision(first.revisions, { score: score("nginx:2"), generation: 3, now: T0 });
  assert.equal(next.revision.number, 2);
  assert.equal(next.revision.change, "web: nginx:1 → nginx:2");
});

Deno.test("recordRevision() going back to older content makes a new number and drops the old entry", () => {
  const revisions = history(["nginx:1", "nginx:2", "nginx:3", "nginx:1"]);
  assert.deepEqual(revisions.map((r) => [r.number, r.score]), [
    [2, score("nginx:2")],
    [3, score("nginx:3")],
    [4, score("nginx:1")],
  ]);
  assert.equal(revisions.at(-1)!.change, "back to the workload of revision 1");
});

Deno.test("recordRevision() keeps the newest N revisions, and the pinned (stable) one", () => {
  const images = Array.from({ length: 14 }, (_, i) => `nginx:${i + 1}`);
  assert.deepEqual(history(images).map((r) => r.number), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  assert.deepEqual(history(images, 3).map((r) => r.number), [12, 13, 14]);
  assert.deepEqual(history(images, 3, [2]).map((r) => r.number), [2, 13, 14]);
});

Deno.test("undoTarget() goes back one revision, or to the one asked for if it is kept", () => {
  const revisions = history(["nginx:1", "nginx:2", "nginx:3"]);
  assert.equal(undoTarget(revisions, 3).number, 2);
  assert.equal(undoTarget(revisions, 3, 1).number, 1);
  // Its workload applied again is a new revision, 4, with revision 1's content.
  const undone = recordRevision(revisions, {
    score: undoTarget(revisions, 3, 1).score,
    generation: 4,
    now: T0,
  });
  assert.equal(undone.revision.number, 4);
  assert.equal(undone.revision.hash, revisions[0]!.hash);
});

Deno.test("undoTarget() refuses a revision that is not kept, naming the kept ones", () => {
  const revisions = history(["nginx:1", "nginx:2"]);
  assert.throws(() => undoTarget(revisions, 2, 7), (error: unknown) => {
    assert.ok(error instanceof RevisionNotFoundError);
    assert.equal(
      error.message,
      "revision 7 is not kept (kept: 1, 2); run fleet rollout history to see them",
    );
    assert.equal(exitCodeOf(error), 2);
    return true;
  });
  assert.throws(() => undoTarget(revisions, 2, 2), /revision 2 is not kept/);
  assert.throws(() => undoTarget(revisions.slice(1), 2), /no revision before the current one/);
});

Deno.test("describeChange() says which services were added, removed or changed", () => {
  const before: ScoreEnvelope = {
    type: "PodmanV0",
    data: {
      services: [
        { name: "web", image: "nginx:1" },
        { name: "cache", image: "redis:7" },
        { name: "old", image: "busybox" },
      ],
    },
  };
  const after: ScoreEnvelope = {
    type: "PodmanV0",
    data: {
      services: [
        { name: "web", image: "nginx:2" },
        { name: "cache", image: "redis:7", env: [{ name: "A", value: "1" }] },
        { name: "new", image: "alpine" },
      ],
    },
  };
  assert.equal(
    describeChange(before, after),
    "web: nginx:1 → nginx:2; cache: settings changed; new added (alpine); old removed",
  );
  assert.equal(describeChange(undefined, after), "first revision");
  assert.equal(
    describeChange(before, { type: "ComposeV1", data: {} }),
    "workload type PodmanV0 → ComposeV1",
  );
  assert.equal(describeChange(score("a"), score("a", { command: ["x"] })), "web: settings changed");
});
