import assert from "node:assert/strict";
import {
  DNS_LABEL_RULE,
  identifierProblem,
  identifierSchema,
  InvalidIdentifierError,
  validateIdentifier,
} from "./ids.ts";

const VALID = ["a", "0", "dev-1", "edge-0042", "a--b", "x".repeat(63), "9lives"];

for (const value of VALID) {
  Deno.test(`validateIdentifier() accepts ${JSON.stringify(value)}`, () => {
    assert.equal(validateIdentifier("device id", value), value);
    assert.equal(identifierProblem(value), undefined);
    assert.equal(identifierSchema("device id").parse(value), value);
  });
}

/** Invalid identifiers and the part of the rule each message must state. */
const INVALID: [string, RegExp][] = [
  ["", /it is empty/],
  ["x".repeat(64), /64 characters long \(max 63\)/],
  ["Dev", /uppercase letters are not allowed/],
  ["dev.1", /dots and the wildcards/],
  ["dev*", /wildcards '\*' and '>'/],
  ["dev>", /wildcards '\*' and '>'/],
  ["dev 1", /whitespace is not allowed/],
  ["dev\t1", /whitespace is not allowed/],
  ["-dev", /start and end with a letter or digit/],
  ["dev-", /start and end with a letter or digit/],
  ["dév", /only lowercase a-z, 0-9 and '-' are allowed/],
  ["dev_1", /only lowercase a-z, 0-9 and '-' are allowed/],
  ["dev/1", /only lowercase a-z, 0-9 and '-' are allowed/],
];

for (const [value, problem] of INVALID) {
  Deno.test(`validateIdentifier() rejects ${JSON.stringify(value)} naming the value and the rule`, () => {
    assert.throws(
      () => validateIdentifier("device id", value),
      (e: unknown) => {
        assert.ok(e instanceof InvalidIdentifierError);
        assert.equal(e.name, "InvalidIdentifierError");
        assert.equal(e.what, "device id");
        assert.equal(e.kind, "usage");
        assert.equal(e.value, value);
        assert.ok(
          e.message.startsWith(`Invalid device id ${JSON.stringify(value)}: `),
          e.message,
        );
        assert.match(e.message, problem);
        assert.ok(e.message.includes(DNS_LABEL_RULE), e.message);
        return true;
      },
    );
  });

  Deno.test(`identifierSchema() rejects ${JSON.stringify(value)} with the same message`, () => {
    const result = identifierSchema("device id").safeParse(value);
    assert.equal(result.success, false);
    assert.equal(result.error!.issues.length, 1);
    const zodMessage = result.error!.issues[0]!.message;
    let thrown = "";
    try {
      validateIdentifier("device id", value);
    } catch (e) {
      thrown = (e as Error).message;
    }
    // The zod message follows a field path (`metadata.name: invalid ...`), hence lowercase.
    assert.equal(zodMessage, thrown.charAt(0).toLowerCase() + thrown.slice(1));
  });
}

Deno.test("validateIdentifier() names the kind of identifier in its message", () => {
  for (const kind of ["device id", "namespace", "deployment name", "service name"] as const) {
    assert.throws(
      () => validateIdentifier(kind, "Bad"),
      (e: unknown) =>
        e instanceof InvalidIdentifierError && e.what === kind &&
        e.message.startsWith(`Invalid ${kind} "Bad": `),
    );
  }
});

Deno.test("identifierSchema() rejects a non-string", () => {
  assert.equal(identifierSchema("namespace").safeParse(42).success, false);
  assert.equal(identifierSchema("namespace").safeParse(undefined).success, false);
});
