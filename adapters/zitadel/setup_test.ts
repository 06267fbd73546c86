import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { silentLogger } from "../logger.ts";
import { createTokenSource, loadPrivateKey } from "../oidc/token_source.ts";
import { startTestProvider } from "../../testing/oidc_provider.ts";
import { createZitadelManagement } from "./management.ts";
import { setupZitadel } from "./setup.ts";

Deno.test("setupZitadel() creates the project, roles and service users once; the operator's key gets a token with its role", async () => {
  await using idp = await startTestProvider({ managementToken: "admin-token" });
  const management = createZitadelManagement({ baseUrl: idp.issuer, token: "admin-token" });
  const options = {
    management,
    projectName: "fleet",
    keyExpiration: new Date(Date.now() + 86_400_000),
    newKeys: false,
  };
  const first = await setupZitadel(options);
  assert.equal(first.projectCreated, true);
  assert.deepEqual(first.rolesAdded, ["device", "operator", "viewer", "maintainer", "admin"]);
  assert.equal(first.operator.created, true);
  assert.equal(first.callout.created, true);
  assert.ok(first.operator.keyFile !== undefined && first.callout.keyFile !== undefined);

  const again = await setupZitadel(options);
  assert.deepEqual(again, {
    projectId: first.projectId,
    projectCreated: false,
    rolesAdded: [],
    operator: { ...first.operator, created: false, keyFile: undefined },
    callout: { ...first.callout, created: false, keyFile: undefined },
  });
  const renewed = await setupZitadel({ ...options, newKeys: true });
  assert.ok(renewed.operator.keyFile !== undefined && renewed.operator.created === false);

  const key = await loadPrivateKey(first.operator.keyFile);
  const token = await createTokenSource({
    issuer: idp.issuer,
    clientId: key.clientId ?? "",
    privateKeyJwk: key,
    grant: "jwt-bearer",
    logger: silentLogger,
  }).token();
  assert.deepEqual(decodeJwt(token).roles, ["operator"]);
});
