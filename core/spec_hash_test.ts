import assert from "node:assert/strict";
import { canonicalJson, specHash } from "./spec_hash.ts";

Deno.test("canonicalJson() sorts object keys at every level", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }),
    '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
  );
});

Deno.test("canonicalJson() keeps array order", () => {
  assert.equal(canonicalJson([3, 1, 2]), "[3,1,2]");
  assert.equal(canonicalJson({ a: ["b", "a"] }), '{"a":["b","a"]}');
  assert.notEqual(canonicalJson({ a: ["b", "a"] }), canonicalJson({ a: ["a", "b"] }));
});

Deno.test("canonicalJson() is the same for differently ordered equal values", () => {
  const a = { name: "web", image: "nginx", env: [{ name: "A", value: "1" }], ports: ["80:80"] };
  const b = { ports: ["80:80"], env: [{ value: "1", name: "A" }], image: "nginx", name: "web" };
  assert.equal(canonicalJson(a), canonicalJson(b));
});

Deno.test("canonicalJson() renders primitives like JSON.stringify", () => {
  for (const v of [null, true, 0, -1.5, "x", "é\n"]) {
    assert.equal(canonicalJson(v), JSON.stringify(v));
  }
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
});

Deno.test("specHash() is 16 hex digits, equal for equal values whatever their key order", () => {
  const h = specHash({ b: 1, a: 2 });
  assert.match(h, /^[0-9a-f]{16}$/);
  assert.equal(h, specHash({ a: 2, b: 1 }));
  assert.notEqual(h, specHash({ a: 2, b: 2 }));
  assert.notEqual(specHash(["a", "b"]), specHash(["b", "a"]));
});

Deno.test("specHash() is stable across releases for a known value", () => {
  // The hash is stored in container labels: changing it recreates every container.
  assert.equal(specHash({}), "44136fa355b3678a");
});
