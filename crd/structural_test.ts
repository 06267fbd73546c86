import assert from "node:assert/strict";
import * as z from "zod";
import {
  celBracketProblem,
  crdRegistry,
  structuralProblems,
  type StructuralSchema,
  toStructural,
  UnstructuralSchemaError,
  zodToStructural,
} from "./mod.ts";
import { deploymentCrd, deviceCrd } from "./crds.ts";
import { DeploymentSpec } from "../core/deployment.ts";
import { Aggregate } from "../core/deployment_status.ts";

/** Wraps a node as a resource root, which is what structuralProblems checks. */
function root(node: StructuralSchema | Record<string, unknown>): Record<string, unknown> {
  return { type: "object", properties: { spec: node } };
}

/** Every key used anywhere in a JSON value. */
function allKeys(value: unknown, keys = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => allKeys(v, keys));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      keys.add(k);
      allKeys(v, keys);
    }
  }
  return keys;
}

// --- discriminated unions ------------------------------------------------------------

const Shape = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("circle"), radius: z.number().positive(), label: z.string() }),
  z.object({
    kind: z.literal("rect"),
    size: z.object({ w: z.number(), h: z.number() }),
    label: z.string(),
  }),
]);

Deno.test("zodToStructural() folds a discriminated union into one object", () => {
  const schema = zodToStructural(Shape);
  assert.equal(schema.type, "object");
  assert.equal(schema.properties?.kind?.type, "string");
  assert.deepEqual(schema.properties?.kind?.enum, ["circle", "rect"]);
  assert.deepEqual(Object.keys(schema.properties ?? {}), ["kind", "radius", "label", "size"]);
  assert.deepEqual(schema.required, ["kind", "label"]);
  assert.equal(schema.properties?.radius?.exclusiveMinimum, true);
  assert.deepEqual(schema.properties?.size?.required, ["w", "h"]);
  assert.equal("oneOf" in schema || "anyOf" in schema, false);
  assert.deepEqual(structuralProblems(root(schema)), []);
});

Deno.test("zodToStructural() turns each variant's own requirements into a CEL rule", () => {
  const rules = zodToStructural(Shape)["x-kubernetes-validations"];
  assert.deepEqual(rules, [
    {
      rule: 'self.kind != "circle" || (has(self.radius))',
      message: 'when kind is "circle", radius must be set',
    },
    {
      rule: 'self.kind != "rect" || (has(self.size))',
      message: 'when kind is "rect", size must be set',
    },
  ]);
});

Deno.test("zodToStructural() follows variant requirements into nested objects and arrays", () => {
  const Event = z.discriminatedUnion("type", [
    z.object({
      type: z.literal("a"),
      data: z.object({
        x: z.string(),
        y: z.string().optional(),
        items: z.array(z.object({ id: z.string().optional(), n: z.number() })).optional(),
      }),
    }),
    z.object({
      type: z.literal("b"),
      data: z.object({ y: z.string(), items: z.array(z.object({ id: z.string() })).optional() }),
    }),
  ]);
  const schema = zodToStructural(Event);
  assert.deepEqual(schema.required, ["type", "data"]);
  assert.equal(schema.properties?.data?.required, undefined);
  assert.deepEqual(schema["x-kubernetes-validations"], [
    {
      rule: 'self.type != "a" || (has(self.data.x) && ' +
        "(!has(self.data.items) || self.data.items.all(e0, has(e0.n))))",
      message: 'when type is "a", data.x, data.items[].n must be set',
    },
    {
      rule: 'self.type != "b" || (has(self.data.y) && ' +
        "(!has(self.data.items) || self.data.items.all(e0, has(e0.id))))",
      message: 'when type is "b", data.y, data.items[].id must be set',
    },
  ]);
  assert.deepEqual(structuralProblems(root(schema)), []);
});

Deno.test("zodToStructural() folds a one-variant union to the variant (today's Score)", () => {
  const spec = zodToStructural(DeploymentSpec);
  const score = spec.properties?.score;
  assert.equal(score?.type, "object");
  assert.deepEqual(score?.properties?.type?.enum, ["PodmanV0"]);
  assert.deepEqual(score?.required, ["type", "data"]);
  assert.equal(score?.["x-kubernetes-validations"], undefined);
});

Deno.test("zodToStructural() folds a union without discriminator with one any-of rule", () => {
  const schema = zodToStructural(
    z.union([z.object({ a: z.string() }), z.object({ b: z.string() })]),
  );
  assert.equal(schema.required, undefined);
  assert.deepEqual(schema["x-kubernetes-validations"], [{
    rule: "(has(self.a)) || (has(self.b))",
    message: "must have the fields of one of its forms: a; or b",
  }]);
});

Deno.test("zodToStructural() keeps the union node's own keywords on the folded object", () => {
  const registry = crdRegistry();
  const Union = z.discriminatedUnion("t", [
    z.object({ t: z.literal("x") }),
    z.object({ t: z.literal("y") }),
  ]).describe("a thing");
  registry.add(Union, { "x-kubernetes-validations": [{ rule: "true", message: "mine" }] });
  const schema = zodToStructural(z.object({ u: Union }), { metadata: registry });
  assert.equal(schema.properties?.u?.description, "a thing");
  assert.deepEqual(schema.properties?.u?.["x-kubernetes-validations"], [
    { rule: "true", message: "mine" },
  ]);
});

Deno.test("zodToStructural() merges scalar unions: literals, nullable, int-or-string", () => {
  const schema = zodToStructural(z.object({
    lit: z.union([z.literal("a"), z.literal("b")]),
    maybe: z.string().nullable(),
    port: z.union([z.string(), z.number().int()]),
    last: Aggregate.shape.lastError,
  }));
  assert.deepEqual(schema.properties?.lit, { type: "string", enum: ["a", "b"] });
  assert.deepEqual(schema.properties?.maybe, { type: "string", nullable: true });
  assert.deepEqual(schema.properties?.port, { "x-kubernetes-int-or-string": true });
  assert.equal(schema.properties?.last?.nullable, true);
  assert.equal("default" in (schema.properties?.last ?? {}), false, "default: null is dropped");
  assert.deepEqual(structuralProblems(root(schema)), []);
});

Deno.test("zodToStructural() refuses unions of different types and variant-specific rules", () => {
  assert.throws(
    () => zodToStructural(z.object({ v: z.union([z.string(), z.boolean()]) })),
    (e: unknown) => e instanceof UnstructuralSchemaError && e.path === "v",
  );
  const registry = crdRegistry();
  const Inner = z.object({ x: z.string() });
  registry.add(Inner, { "x-kubernetes-validations": [{ rule: "true" }] });
  const Union = z.discriminatedUnion("t", [
    z.object({ t: z.literal("a"), d: Inner }),
    z.object({ t: z.literal("b"), d: z.object({ x: z.string() }) }),
  ]);
  assert.throws(() => zodToStructural(Union, { metadata: registry }), /different CEL rules/);
});

// --- records, open payloads, objects --------------------------------------------------

Deno.test("zodToStructural() renders records as additionalProperties, never with properties", () => {
  const schema = zodToStructural(z.object({
    counts: z.record(z.string(), z.number().int()),
    labels: z.record(z.string(), z.string()),
  }));
  assert.deepEqual(schema.properties?.counts, {
    type: "object",
    additionalProperties: { type: "integer" },
  });
  assert.deepEqual(schema.properties?.labels, {
    type: "object",
    additionalProperties: { type: "string" },
  });
});

Deno.test("zodToStructural() preserves unknown fields only where the payload is open", () => {
  const schema = zodToStructural(z.object({
    anything: z.unknown(),
    any: z.any(),
    bag: z.record(z.string(), z.unknown()),
    loose: z.object({ id: z.string() }).catchall(z.unknown()),
    list: z.array(z.unknown()),
    closed: z.object({ id: z.string() }),
  }));
  const p = schema.properties ?? {};
  assert.deepEqual(p.anything, { "x-kubernetes-preserve-unknown-fields": true });
  assert.deepEqual(p.any, { "x-kubernetes-preserve-unknown-fields": true });
  assert.deepEqual(p.bag, { type: "object", "x-kubernetes-preserve-unknown-fields": true });
  assert.deepEqual(p.loose, {
    type: "object",
    properties: { id: { type: "string" } },
    required: ["id"],
    "x-kubernetes-preserve-unknown-fields": true,
  });
  assert.deepEqual(p.list, {
    type: "array",
    items: { "x-kubernetes-preserve-unknown-fields": true },
  });
  assert.equal(p.closed?.["x-kubernetes-preserve-unknown-fields"], undefined);
  assert.equal(schema["x-kubernetes-preserve-unknown-fields"], undefined);
  assert.deepEqual(structuralProblems(root(schema)), []);
});

Deno.test("zodToStructural() refuses fixed properties beside typed extra keys", () => {
  assert.throws(
    () => zodToStructural(z.object({ id: z.string() }).catchall(z.number())),
    UnstructuralSchemaError,
  );
});

Deno.test("toStructural() drops additionalProperties: false (what zod's output mode adds)", () => {
  const output = z.toJSONSchema(DeploymentSpec, { target: "openapi-3.0", io: "output" });
  assert.ok(JSON.stringify(output).includes('"additionalProperties":false'));
  const schema = toStructural(output);
  assert.equal(JSON.stringify(schema).includes('"additionalProperties":false'), false);
  assert.deepEqual(structuralProblems(root(schema)), []);
});

// --- keywords kept, dropped, rewritten ------------------------------------------------

Deno.test("zodToStructural() keeps defaults, enums, patterns, lengths, bounds, descriptions", () => {
  const schema = zodToStructural(z.object({
    name: z.string().min(1).max(20).regex(/^[a-z]+$/).describe("the name"),
    mode: z.enum(["fast", "slow"]).default("slow"),
    count: z.number().int().min(1).max(9).default(3),
    tags: z.array(z.string()).min(1).max(5),
    flag: z.boolean().default(false),
  }));
  assert.deepEqual(schema.properties, {
    name: {
      description: "the name",
      type: "string",
      pattern: "^[a-z]+$",
      minLength: 1,
      maxLength: 20,
    },
    mode: { type: "string", enum: ["fast", "slow"], default: "slow" },
    count: { type: "integer", default: 3, minimum: 1, maximum: 9 },
    tags: { type: "array", minItems: 1, maxItems: 5, items: { type: "string" } },
    flag: { type: "boolean", default: false },
  });
  // io "input": a defaulted field is optional, the API server fills it in.
  assert.deepEqual(schema.required, ["name", "tags"]);
});

Deno.test("zodToStructural() keeps the defaults of DeploymentSpec", () => {
  const spec = zodToStructural(DeploymentSpec);
  const service = spec.properties?.score?.properties?.data?.properties?.services?.items;
  assert.deepEqual(spec.properties?.rollout?.default, { strategy: "Immediate" });
  assert.equal(service?.properties?.restartPolicy?.default, "unless-stopped");
  assert.deepEqual(service?.properties?.restartPolicy?.enum, [
    "no",
    "always",
    "on-failure",
    "unless-stopped",
  ]);
  assert.deepEqual(service?.properties?.ports?.default, []);
  assert.equal(service?.properties?.image?.pattern, "^\\S+$");
  assert.deepEqual(service?.required, ["name", "image"]);
});

Deno.test("zodToStructural() drops zod-only formats and safe-integer bounds", () => {
  const schema = zodToStructural(z.object({
    at: z.iso.datetime(),
    path: z.string().startsWith("/"),
    n: z.number().int(),
    id: z.uuid(),
  }));
  assert.deepEqual(schema.properties?.at, { type: "string", format: "date-time" });
  assert.deepEqual(schema.properties?.path, { type: "string", pattern: "^\\/.*" });
  assert.deepEqual(schema.properties?.n, { type: "integer" });
  assert.equal(schema.properties?.id?.format, "uuid");
});

Deno.test("zodToStructural() never emits tuple items", () => {
  assert.throws(
    () => zodToStructural(z.object({ pair: z.tuple([z.string(), z.number()]) })),
    /different types/,
  );
  const same = zodToStructural(z.object({ pair: z.tuple([z.string(), z.string()]) }));
  assert.deepEqual(same.properties?.pair, {
    type: "array",
    minItems: 2,
    maxItems: 2,
    items: { type: "string" },
  });
  assert.throws(() => toStructural({ type: "array", items: [{ type: "string" }] }), /tuple/);
  assert.throws(
    () => toStructural({ type: "array", prefixItems: [{ type: "string" }] }),
    /prefixItems/,
  );
});

Deno.test("toStructural() inlines $refs and refuses recursive ones", () => {
  const schema = toStructural({
    type: "object",
    properties: { a: { $ref: "#/definitions/Name" }, b: { $ref: "#/$defs/Name" } },
    definitions: { Name: { type: "string", minLength: 1 } },
    $defs: { Name: { type: "string", minLength: 1 } },
    $schema: "http://json-schema.org/draft-04/schema#",
  });
  assert.deepEqual(schema, {
    type: "object",
    properties: { a: { type: "string", minLength: 1 }, b: { type: "string", minLength: 1 } },
  });
  const Node: z.ZodType<{ children: unknown[] }> = z.object({
    get children() {
      return z.array(Node);
    },
  });
  assert.throws(
    () => zodToStructural(z.object({ a: Node, b: Node })),
    /recursive/,
  );
  assert.throws(() => toStructural({ $ref: "#/definitions/Missing" }), /unresolvable/);
});

Deno.test("zodToStructural() merges an intersection into one object", () => {
  const schema = zodToStructural(
    z.intersection(z.object({ a: z.string() }), z.object({ b: z.number() })),
  );
  assert.deepEqual(schema, {
    type: "object",
    properties: { a: { type: "string" }, b: { type: "number" } },
    required: ["a", "b"],
  });
});

Deno.test("zodToStructural() refuses values that can only be null", () => {
  assert.throws(() => zodToStructural(z.object({ n: z.null() })), /only be null/);
});

Deno.test("zodToStructural() merges registry metadata into the nodes of those schemas", () => {
  const registry = crdRegistry();
  const Item = z.string();
  const List = z.array(Item);
  registry.add(Item, { maxLength: 10 });
  registry.add(List, { maxItems: 3, "x-kubernetes-list-type": "set" });
  const schema = zodToStructural(z.object({ list: List.optional() }), { metadata: registry });
  assert.deepEqual(schema.properties?.list, {
    type: "array",
    maxItems: 3,
    items: { type: "string", maxLength: 10 },
    "x-kubernetes-list-type": "set",
  });
});

Deno.test("zodToStructural() output holds no $schema, $ref, definitions or junctors", () => {
  for (const crd of [deploymentCrd(), deviceCrd()]) {
    const keys = allKeys(crd.spec.versions[0]?.schema.openAPIV3Schema);
    for (
      const bad of ["$schema", "$ref", "definitions", "$defs", "oneOf", "anyOf", "allOf", "not"]
    ) {
      assert.equal(keys.has(bad), false, `${crd.metadata.name} has ${bad}`);
    }
  }
});

// --- CEL helpers ---------------------------------------------------------------------

Deno.test("celBracketProblem() finds unbalanced brackets and open strings", () => {
  assert.equal(celBracketProblem('self.all(e, e in ["a", "b)"])'), undefined);
  assert.match(celBracketProblem("self.all(e, e") ?? "", /missing '\)'/);
  assert.match(celBracketProblem("size(self))") ?? "", /unbalanced/);
  assert.match(celBracketProblem('self == "open') ?? "", /unterminated/);
});

// --- structuralProblems --------------------------------------------------------------

Deno.test("structuralProblems() is empty for both generated CRDs", () => {
  for (const crd of [deploymentCrd(), deviceCrd()]) {
    assert.deepEqual(structuralProblems(crd.spec.versions[0]?.schema.openAPIV3Schema), []);
  }
});

Deno.test("structuralProblems() rejects zod's raw openapi-3.0 output (the oneOf of objects)", () => {
  const raw = z.toJSONSchema(DeploymentSpec, { target: "openapi-3.0", io: "input" });
  const problems = structuralProblems(root(raw as Record<string, unknown>));
  assert.ok(
    problems.some((p) => /spec\.score: every node needs a type/.test(p)),
    problems.join("\n"),
  );
  assert.ok(problems.some((p) => /oneOf\[0\]: 'type' is not allowed inside/.test(p)));
  assert.ok(
    problems.some((p) => /oneOf\[0\]\.properties\.type: not also declared outside/.test(p)),
  );
});

const BAD: [string, Record<string, unknown>, RegExp][] = [
  [
    "a node without type",
    root({ type: "object", properties: { x: {} } }),
    /every node needs a type/,
  ],
  ["an unknown type", root({ type: "null" }), /is not one of/],
  [
    "additionalProperties beside properties",
    root({
      type: "object",
      properties: { a: { type: "string" } },
      additionalProperties: { type: "string" },
    }),
    /mutually exclusive/,
  ],
  ["additionalProperties: false", root({ type: "object", additionalProperties: false }), /false/],
  ["tuple items", root({ type: "array", items: [{ type: "string" }] }), /not a tuple/],
  ["an array without items", root({ type: "array" }), /needs an items schema/],
  ["a $ref", root({ $ref: "#/definitions/X", type: "object" }), /'\$ref' is not allowed/],
  ["definitions", { type: "object", definitions: {} }, /'definitions' is not allowed/],
  ["$schema", { type: "object", $schema: "x" }, /'\$schema' is not allowed/],
  [
    "uniqueItems",
    root({ type: "array", items: { type: "string" }, uniqueItems: true }),
    /uniqueItems/,
  ],
  ["a root that is not an object", { type: "string" }, /root must have type object/],
  ["additionalProperties at the root", {
    type: "object",
    additionalProperties: { type: "string" },
  }, /not allowed at the root/],
  [
    "metadata fields besides name",
    {
      type: "object",
      properties: { metadata: { type: "object", properties: { labels: { type: "object" } } } },
    },
    /metadata\.labels: only name and generateName/,
  ],
  [
    "a description inside anyOf",
    root({ type: "string", anyOf: [{ description: "x" }] }),
    /'description' is not allowed inside a logical junctor/,
  ],
  [
    "a property only inside oneOf",
    root({ type: "object", oneOf: [{ properties: { a: {} } }] }),
    /properties\.a: not also declared outside/,
  ],
  [
    "a list-map key that is optional",
    root({
      type: "array",
      items: { type: "object", properties: { name: { type: "string" } } },
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
    }),
    /must be required or defaulted/,
  ],
  [
    "list-map keys without list-type map",
    root({ type: "array", items: { type: "string" }, "x-kubernetes-list-map-keys": ["a"] }),
    /needs list-type map/,
  ],
  [
    "a message on two lines",
    root({ type: "string", "x-kubernetes-validations": [{ rule: "true", message: "a\nb" }] }),
    /one non-empty line/,
  ],
  [
    "an unbalanced rule",
    root({ type: "string", "x-kubernetes-validations": [{ rule: "size(self" }] }),
    /missing/,
  ],
  [
    "an empty rule",
    root({ type: "string", "x-kubernetes-validations": [{ rule: " " }] }),
    /non-empty 'rule'/,
  ],
  [
    "preserve-unknown-fields false",
    root({ type: "object", "x-kubernetes-preserve-unknown-fields": false }),
    /must be true/,
  ],
  [
    "a null default",
    root({ type: "string", nullable: true, default: null }),
    /default must not be null/,
  ],
  [
    "a required field that is not a property",
    root({ type: "object", properties: {}, required: ["a"] }),
    /required field "a" is not a property/,
  ],
  ["an empty enum", root({ type: "string", enum: [] }), /non-empty list/],
];

for (const [what, schema, expected] of BAD) {
  Deno.test(`structuralProblems() reports ${what}`, () => {
    const problems = structuralProblems(schema);
    assert.ok(problems.some((p) => expected.test(p)), `got: ${problems.join(" | ") || "nothing"}`);
  });
}

Deno.test("structuralProblems() accepts the int-or-string anyOf exception", () => {
  const schema = root({
    "x-kubernetes-int-or-string": true,
    anyOf: [{ type: "integer" }, { type: "string" }],
  });
  assert.deepEqual(structuralProblems(schema), []);
});
