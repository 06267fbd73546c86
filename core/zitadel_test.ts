import assert from "node:assert/strict";
import { zitadelScope } from "./zitadel.ts";

Deno.test("zitadelScope() asks for openid, the project as audience and its roles, once each", () => {
  assert.equal(
    zitadelScope("302118472931950612"),
    "openid urn:zitadel:iam:org:project:id:302118472931950612:aud " +
      "urn:zitadel:iam:org:projects:roles",
  );
  assert.equal(
    zitadelScope("7", "openid fleet"),
    "openid urn:zitadel:iam:org:project:id:7:aud urn:zitadel:iam:org:projects:roles fleet",
  );
});
