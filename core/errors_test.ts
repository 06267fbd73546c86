import assert from "node:assert/strict";
import { z } from "zod";
import { describeIssues, parseJsonWith, parseWith, WireFormatError } from "./errors.ts";
import { Labels } from "./selector.ts";

const Point = z.object({ x: z.number(), tags: z.array(z.string()).default([]) });

Deno.test("describeIssues() prefixes each message with its dotted path and joins with '; '", () => {
  const result = Point.safeParse({ x: "1", tags: ["a", 2] });
  assert.equal(result.success, false);
  assert.equal(
    describeIssues(result.error!),
    "x: Invalid input: expected number, received string; " +
      "tags.1: Invalid input: expected string, received number",
  );
});

Deno.test("describeIssues() leaves a root-level message without a path", () => {
  const result = z.string().safeParse(1);
  assert.equal(describeIssues(result.error!), "Invalid input: expected string, received number");
});

Deno.test("describeIssues() explains a bad record key instead of 'Invalid key in record'", () => {
  const result = Labels.safeParse({ "a b": "x" });
  assert.equal(result.success, false);
  const text = describeIssues(result.error!);
  assert.match(text, /^a b: label name "a b" must be/);
  assert.doesNotMatch(text, /Invalid key in record/);
});

Deno.test("parseWith() returns the parsed value with defaults filled", () => {
  assert.deepStrictEqual(parseWith(Point, { x: 1, extra: true }, "point"), { x: 1, tags: [] });
});

Deno.test("parseWith() throws a WireFormatError naming what was parsed and the field", () => {
  assert.throws(
    () => parseWith(Point, { x: null }, "point from test"),
    (e: unknown) => {
      assert.ok(e instanceof WireFormatError);
      assert.equal(e.name, "WireFormatError");
      assert.equal(e.what, "point from test");
      assert.match(e.message, /^Invalid point from test: x: /);
      return true;
    },
  );
});

Deno.test("parseJsonWith() accepts text and bytes", () => {
  assert.deepStrictEqual(parseJsonWith(Point, '{"x":2}', "point"), { x: 2, tags: [] });
  assert.deepStrictEqual(
    parseJsonWith(Point, new TextEncoder().encode('{"x":3,"tags":["t"]}'), "point"),
    { x: 3, tags: ["t"] },
  );
});

Deno.test("parseJsonWith() turns malformed JSON into a WireFormatError with the cause", () => {
  assert.throws(
    () => parseJsonWith(Point, "{x:", "desired state dev-1.default.web"),
    (e: unknown) => {
      assert.ok(e instanceof WireFormatError);
      assert.match(e.message, /^Invalid desired state dev-1\.default\.web: not valid JSON \(/);
      assert.ok(e.cause instanceof SyntaxError);
      return true;
    },
  );
});

Deno.test("parseJsonWith() validates after parsing", () => {
  assert.throws(() => parseJsonWith(Point, "[]", "point"), WireFormatError);
  assert.throws(() => parseJsonWith(Point, "", "point"), /not valid JSON/);
});
