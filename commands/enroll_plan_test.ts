import assert from "node:assert/strict";
import { join } from "node:path";
import { Command } from "@commander-js/extra-typings";
import { enrollOptions, planEnroll } from "./_enroll.ts";

/** The plan `fleet device enroll pi-7 <args>` makes, through the command's own options. */
async function plan(packageDir: string, ...args: string[]) {
  const command = new Command("enroll").exitOverride();
  for (const option of enrollOptions()) command.addOption(option);
  command.parse([
    ...["--package-dir", packageDir, "--device-nats-url", "tls://nats.example.com:4222"],
    ...["--no-wait", ...args],
  ], { from: "user" });
  return await planEnroll("pi-7", command.opts());
}

Deno.test("planEnroll() configures a device whose machine user it creates in Zitadel to ask for the project's roles", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-enroll-plan-" });
  try {
    await Deno.writeFile(join(dir, "fleet_9.9.9_amd64.deb"), new Uint8Array(16));
    await Deno.writeTextFile(join(dir, "token"), "admin-token\n");
    const zitadel = await plan(
      dir,
      ...["--zitadel-url", "https://id.example.com", "--zitadel-project-id", "302118472931950612"],
      ...["--zitadel-token-file", join(dir, "token")],
    );
    assert.deepEqual(zitadel.credentials, {
      type: "oidc",
      issuer: "https://id.example.com",
      key_file: "/etc/fleet-agent/device-key.json",
      grant: "jwt-bearer",
      provider: "zitadel",
      project_id: "302118472931950612",
    });
    const other = await plan(dir, "--device-oidc-issuer", "https://idp.example.com");
    assert.equal(other.credentials.type === "oidc" && other.credentials.provider, "generic");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
