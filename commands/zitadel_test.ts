import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startTestProvider } from "../testing/oidc_provider.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("fleet zitadel setup makes the project, roles and service users once and prints what the chart needs", async () => {
  await using idp = await startTestProvider({ managementToken: "admin-token" });
  const dir = await Deno.makeTempDir({ prefix: "fleet-zitadel-setup-" });
  try {
    await Deno.writeTextFile(join(dir, "token"), "admin-token\n", { mode: 0o600 });
    const args = [
      "zitadel",
      "setup",
      "--zitadel-url",
      idp.issuer,
      "--zitadel-token-file",
      join(dir, "token"),
      "--output-dir",
      dir,
    ];
    const first = await fleet(...args);
    assert.equal(first.code, 0, first.stderr);
    const projectId =
      /Project "fleet": (\d+) \(created\); roles added: device, operator, viewer, maintainer, admin/
        .exec(first.stdout)?.[1];
    assert.ok(projectId, first.stdout);
    assert.match(first.stdout, /fleet-operator: user \d+ \(created\), new key written to /);
    assert.match(first.stdout, /fleet-callout: user \d+ \(created\), new key written to /);
    assert.match(
      first.stdout,
      /kubectl create secret generic fleet-operator-oidc --from-file=key=.*fleet-operator-key\.json/,
    );
    assert.match(
      first.stdout,
      new RegExp(`nats\\.oidc\\.zitadelProjectId=${projectId}`),
    );
    assert.match(first.stdout, new RegExp(`audience = "${projectId}"`));
    // The chart's callout values too.
    assert.match(first.stdout, new RegExp(`callout\\.oidc\\.audience=${projectId} `));
    assert.match(first.stdout, /callout\.oidc\.roleClaim=urn:zitadel:iam:org:project:roles/);
    const key = JSON.parse(await Deno.readTextFile(join(dir, "fleet-operator-key.json")));
    assert.equal(key.type, "serviceaccount");
    assert.equal((await Deno.stat(join(dir, "fleet-operator-key.json"))).mode! & 0o777, 0o600);

    const again = await fleet(...args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      new RegExp(`Project "fleet": ${projectId} \\(exists\\); roles all present`),
    );
    assert.match(again.stdout, /fleet-operator: user \d+ \(exists\), no new key/);

    const missing = await fleet("zitadel", "setup", "--zitadel-url", idp.issuer);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--zitadel-token-file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
