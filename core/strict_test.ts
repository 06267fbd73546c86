import assert from "node:assert/strict";
import * as z from "zod";
import { parseStrictWith, unknownFields } from "./strict.ts";
import { WireFormatError } from "./errors.ts";
import { Deployment, DeploymentManifest } from "./deployment.ts";

const FUTURE_DEPLOYMENT = new URL("../fixtures/wire/deployment.future.json", import.meta.url);

Deno.test("unknownFields() finds every key a newer writer added, at every depth, by its path", async () => {
  const future: unknown = JSON.parse(await Deno.readTextFile(FUTURE_DEPLOYMENT));
  // The same schema, two uses: the wire reader ignores them (DESIGN.md §3)...
  assert.equal(Deployment.safeParse(future).success, true);
  // ...and what a person writes is checked key by key. Kubernetes metadata and status are
  // part of a manifest, so only the spec's extras are unknown.
  assert.deepEqual(unknownFields(DeploymentManifest, future), [
    "spec.targetSelector.matchExpressions[0].weight",
    "spec.targetSelector.matchFields",
    "spec.score.schemaRevision",
    "spec.score.data.services[0].env[0].secretRef",
    "spec.score.data.services[0].volumes[0].selinuxRelabel",
    "spec.score.data.services[0].healthcheck.startInterval",
    "spec.score.data.services[1].dependsOn",
    "spec.score.data.networks",
    "spec.score.data.pod",
    "spec.rollout.maxUnavailable",
    "spec.paused",
  ]);
  // The bare Deployment has no place for them.
  const bare = unknownFields(Deployment, future);
  for (const path of ["metadata.uid", "metadata.managedFields", "status"]) {
    assert.ok(bare.includes(path), `${path} in ${bare.join(", ")}`);
  }
});

Deno.test("unknownFields() follows optional, default, nullable, record and array wrappers", () => {
  const Item = z.object({ a: z.string() });
  const schema = z.object({
    opt: Item.optional(),
    def: Item.default({ a: "x" }),
    nul: Item.nullable(),
    map: z.record(z.string(), Item),
    list: z.array(Item),
  });
  assert.deepEqual(
    unknownFields(schema, {
      opt: { a: "1", b: 1 },
      def: { c: 1 },
      nul: null,
      map: { k: { a: "1", d: 1 } },
      list: [{ a: "1" }, { e: 1 }],
      f: 1,
    }),
    ["opt.b", "def.c", "map.k.d", "list[1].e", "f"],
  );
});

Deno.test("unknownFields() walks the union member the input is, and lets open objects be", () => {
  const Tagged = z.discriminatedUnion("type", [
    z.object({ type: z.literal("a"), x: z.number() }),
    z.object({ type: z.literal("b"), y: z.number() }),
  ]);
  // `x` is known to member a, not to member b.
  assert.deepEqual(unknownFields(Tagged, { type: "b", y: 1, x: 2 }), ["x"]);
  assert.deepEqual(unknownFields(Tagged, { type: "c", z: 1 }), [], "an unknown type is zod's");
  const Plain = z.union([z.string(), z.object({ n: z.number() })]);
  assert.deepEqual(unknownFields(Plain, { n: 1, m: 2 }), ["m"]);
  assert.deepEqual(unknownFields(Plain, { n: "1", m: 2 }), [], "no member parses: zod's to say");
  assert.deepEqual(unknownFields(z.looseObject({ a: z.string() }), { a: "", b: 1 }), []);
  assert.deepEqual(unknownFields(z.object({ any: z.unknown() }), { any: { deep: 1 } }), []);
  // A strict object already refuses the key itself; it is not reported twice.
  assert.deepEqual(unknownFields(z.strictObject({ a: z.string() }), { b: 1 }), []);
});

Deno.test("unknownFields() leaves input of the wrong type to the schema", () => {
  const schema = z.object({ list: z.array(z.object({ a: z.string() })) });
  assert.deepEqual(unknownFields(schema, "text"), []);
  assert.deepEqual(unknownFields(schema, { list: { a: "not a list" } }), []);
});

Deno.test("parseStrictWith() refuses unknown fields and invalid values in one line", () => {
  const schema = z.object({ name: z.string(), size: z.number().default(1) });
  assert.deepEqual(parseStrictWith(schema, { name: "a" }, "thing"), { name: "a", size: 1 });
  assert.throws(
    () => parseStrictWith(schema, { nmae: "a", size: 2 }, "thing in x.yaml"),
    (error: unknown) => {
      assert.ok(error instanceof WireFormatError);
      assert.equal(error.kind, "usage");
      assert.equal(
        error.message,
        "Invalid thing in x.yaml: nmae: unknown field; name: is required (string)",
      );
      return true;
    },
  );
});
