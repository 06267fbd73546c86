import assert from "node:assert/strict";
import { DNS_LABEL_PATTERN, InvalidIdentifierError } from "./ids.ts";
import { principalInboxPrefix, principalOf, principalOfClaims } from "./principal.ts";

const ISSUER = "https://idp.example.com/realms/fleet";

Deno.test("principalOf() is a stable RFC 1123 label: the subject, readable, and a hash", () => {
  const alice = principalOf(ISSUER, "alice@example.com");
  assert.match(alice, /^alice-example-com-[0-9a-f]{16}$/);
  assert.equal(principalOf(ISSUER, "alice@example.com"), alice, "stable");
  for (
    const subject of [
      "alice@example.com",
      "312876439287349283",
      "Service Account: fleet-operator",
      "---",
      "ÄÖÜ",
      "x".repeat(300),
      "dev.*.>",
    ]
  ) {
    const p = principalOf(ISSUER, subject);
    assert.match(p, DNS_LABEL_PATTERN, `${subject} -> ${p}`);
    assert.ok(p.length <= 63, p);
  }
  assert.match(principalOf(ISSUER, "ÄÖÜ"), /^p-[0-9a-f]{16}$/);
});

Deno.test("principalOf() tells apart subjects that read alike and issuers of the same subject", () => {
  const all = [
    principalOf(ISSUER, "alice"),
    principalOf(ISSUER, "Alice"),
    principalOf(ISSUER, "al.ice"),
    principalOf(ISSUER, "al-ice"),
    principalOf("https://other.example.com", "alice"),
    principalOf(ISSUER, "alice\nx"),
    principalOf(`${ISSUER}\nalice`, "x"),
  ];
  assert.equal(new Set(all).size, all.length, all.join(" "));
});

Deno.test("principalOfClaims() takes iss with sub, else client_id, and refuses neither", () => {
  assert.equal(principalOfClaims({ iss: ISSUER, sub: "alice" }), principalOf(ISSUER, "alice"));
  assert.equal(
    principalOfClaims({ iss: ISSUER, client_id: "fleet-operator" }),
    principalOf(ISSUER, "fleet-operator"),
  );
  assert.equal(principalOfClaims({ iss: ISSUER }), undefined);
  assert.equal(principalOfClaims({ sub: "alice" }), undefined);
  assert.equal(principalOfClaims({ iss: ISSUER, sub: 7 }), undefined);
  assert.equal(principalOfClaims({ iss: ISSUER, sub: "" }), undefined);
});

Deno.test("principalInboxPrefix() never shares a device's inbox prefix", () => {
  const p = principalOf(ISSUER, "alice");
  assert.equal(principalInboxPrefix(p), `_INBOX_p_${p}`);
  // A device's prefix is `_INBOX_<deviceId>` and a device id has no '_'.
  assert.throws(() => principalInboxPrefix("a.b"), InvalidIdentifierError);
  assert.throws(() => principalInboxPrefix(">"), InvalidIdentifierError);
});
