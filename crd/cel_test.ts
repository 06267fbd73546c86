import assert from "node:assert/strict";
import { celField, celString } from "./cel.ts";

Deno.test("celField() escapes property names as the API server exposes them to CEL", () => {
  assert.equal(celField("plain"), "plain");
  assert.equal(celField("a-b"), "a__dash__b");
  assert.equal(celField("a.b/c"), "a__dot__b__slash__c");
  assert.equal(celField("a__b"), "a__underscores__b");
  assert.equal(celField("namespace"), "__namespace__");
});

Deno.test("celString() quotes with the quote that needs no escaping", () => {
  assert.equal(celString("plain"), '"plain"');
  assert.equal(celString("it's"), '"it\'s"');
  assert.equal(celString('say "hi"'), "'say \"hi\"'");
  assert.equal(celString(`both ' and "`), '"both \' and \\""');
  assert.equal(celString("back\\slash"), '"back\\\\slash"');
});
