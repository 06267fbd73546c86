import assert from "node:assert/strict";
import * as z from "zod";
import {
  describeIssues,
  errorDetail,
  ExitCode,
  exitCodeOf,
  FleetError,
  parseJsonWith,
  parseWith,
  UsageError,
  WireFormatError,
} from "./errors.ts";
import { InvalidIdentifierError, validateIdentifier } from "./ids.ts";
import { Labels, parseSelector, SelectorSyntaxError } from "./selector.ts";
import { buildDeployment, DeploymentFlagError } from "./deployment_builder.ts";

const Point = z.object({ x: z.number(), tags: z.array(z.string()).default([]) });

Deno.test("describeIssues() prefixes each message with its dotted path and joins with '; '", () => {
  const result = Point.safeParse({ x: "1", tags: ["a", 2] });
  assert.equal(result.success, false);
  assert.equal(
    describeIssues(result.error!),
    "x: Invalid input: expected number, received string; " +
      "tags[1]: Invalid input: expected string, received number",
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

Deno.test("exitCodeOf() is 2 for a usage error and 1 for any other failure", () => {
  assert.equal(exitCodeOf(new UsageError("--name is required")), ExitCode.usage);
  assert.equal(exitCodeOf(new FleetError("usage", "bad flag")), 2);
  assert.equal(exitCodeOf(new FleetError("failure", "NATS is down")), ExitCode.failure);
  assert.equal(exitCodeOf(new Error("anything else")), 1);
  assert.equal(exitCodeOf("a thrown string"), 1);
  assert.equal(exitCodeOf(undefined), 1);
});

Deno.test("the core's input errors are usage errors that keep their messages", () => {
  const caught = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (error) {
      return error;
    }
    assert.fail("expected a throw");
  };
  const cases: [unknown, abstract new (...args: never[]) => Error, RegExp][] = [
    [
      caught(() => validateIdentifier("device id", "Pi.1")),
      InvalidIdentifierError,
      /^Invalid device id "Pi\.1": /,
    ],
    [
      caught(() => parseSelector(["a in ()"])),
      SelectorSyntaxError,
      /^Invalid selector "a in \(\)": /,
    ],
    [
      caught(() =>
        buildDeployment({
          name: "web",
          namespace: "default",
          image: "x",
          ports: [],
          env: ["NOVALUE"],
          volumes: [],
          selectors: ["site=a"],
        })
      ),
      DeploymentFlagError,
      /^Invalid --env "NOVALUE": expected NAME=value$/,
    ],
    [caught(() => parseWith(Point, {}, "point")), WireFormatError, /^Invalid point: x: /],
  ];
  for (const [error, type, message] of cases) {
    assert.ok(error instanceof type, String(error));
    assert.ok(error instanceof FleetError, String(error));
    assert.equal(error.kind, "usage", error.name);
    assert.equal(exitCodeOf(error), 2, error.name);
    assert.match(error.message, message);
  }
});

Deno.test("errorDetail() gives the stack and every cause's, in order", () => {
  const root = new TypeError("socket closed");
  const middle = new Error("cannot read the bucket", { cause: root });
  const top = new FleetError("failure", "Cannot list deployments", { cause: middle });
  const detail = errorDetail(top);
  assert.match(detail, /^FleetError: Cannot list deployments\n\s+at /);
  const [, afterMiddle] = detail.split("Caused by: Error: cannot read the bucket");
  assert.ok(afterMiddle !== undefined, detail);
  assert.match(afterMiddle, /Caused by: TypeError: socket closed/);
  assert.equal(errorDetail("plain text"), "plain text");
  const loop = new Error("a");
  loop.cause = loop;
  assert.match(errorDetail(loop), /^Error: a/, "a cause cycle ends");
});
