import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { silentLogger } from "../adapters/logger.ts";
import { startTestProvider } from "../testing/oidc_provider.ts";
import { agentConfigFile } from "./config.ts";
import { credentialsFromConfig } from "./credentials.ts";
import { natsTlsFromConfig } from "../adapters/nats/mod.ts";

Deno.test('credentialsFromConfig() turns [nats.credentials] type = "oidc" into a device token with the device inbox', async () => {
  await using idp = await startTestProvider();
  const user = await idp.addMachineUser({
    id: "pi-lab-1",
    roles: ["device"],
    deviceId: "pi-lab-1",
  });
  const dir = await Deno.makeTempDir();
  try {
    const keyFile = join(dir, "device.key.json");
    await Deno.writeTextFile(keyFile, JSON.stringify(user.privateKeyJwk), { mode: 0o600 });
    const path = join(dir, "config.toml");
    const config = agentConfigFile.parse(
      `device_id = "pi-lab-1"
[nats]
urls = ["nats://127.0.0.1:4222"]
credentials = { type = "oidc", issuer = "${idp.issuer}", client_id = "${user.clientId}", key_file = "${keyFile}", audience = "${idp.audience}" }
[podman]
socket = "/run/podman/podman.sock"
`,
      path,
    );
    const credentials = await credentialsFromConfig(config.nats.credentials, {
      deviceId: config.device_id,
      configPath: path,
      log: silentLogger,
    });
    const options = await credentials.connectionOptions();
    assert.equal(options.inboxPrefix, "_INBOX_pi-lab-1");
    const auth = typeof options.authenticator === "function" ? options.authenticator() : undefined;
    const token = auth && "auth_token" in auth ? String(auth.auth_token) : "";
    assert.equal(decodeJwt(token).fleet_device_id, "pi-lab-1");
    assert.match(credentials.describe(), /OIDC token for client "pi-lab-1"/);
    assert.equal(credentials.bearer, true, "never sent in clear beyond loopback");
    (credentials as { stop?: () => void }).stop?.();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agentConfigFile.parse() requires an absolute key_file for oidc credentials", () => {
  assert.throws(
    () =>
      agentConfigFile.parse(
        `device_id = "pi-1"
[nats]
urls = ["nats://a:4222"]
credentials = { type = "oidc", issuer = "https://id.example.com", key_file = "device.key" }
[podman]
socket = "/x"
`,
        "/etc/fleet-agent/config.toml",
      ),
    /\/etc\/fleet-agent\/config\.toml: nats\.credentials\.key_file: must be an absolute path/,
  );
});

Deno.test("natsTlsFromConfig() reads [nats] ca_file and pin; a malformed pin is refused", () => {
  const config = (nats: string) =>
    agentConfigFile.parse(
      `device_id = "pi-1"
[nats]
urls = ["tls://nats.example.com:4222"]
${nats}
[podman]
socket = "/x"
`,
      "/etc/fleet-agent/config.toml",
    );
  const pin = "sha256//YGKWvf/F7SwqdyaraHlK85EEZLyr/MwswX8LacOr288=";
  assert.deepEqual(
    natsTlsFromConfig(config(`ca_file = "/etc/fleet-agent/nats-ca.pem"\npin = "${pin}"`).nats),
    { caFile: "/etc/fleet-agent/nats-ca.pem", pin },
  );
  assert.deepEqual(natsTlsFromConfig(config("").nats), {});
  assert.throws(
    () => config(`pin = "B3:0A:BC:9D"`),
    /nats\.pin: must be sha256\/\/<base64>, printed by: openssl x509/,
  );
});

Deno.test("agentConfigFile.parse() refuses OIDC credentials over plaintext NATS beyond loopback", () => {
  const config = (urls: string, tls = "") =>
    agentConfigFile.parse(
      `device_id = "pi-1"
[nats]
urls = [${urls}]
${tls}
credentials = { type = "oidc", issuer = "https://id.example.com", key_file = "/etc/fleet-agent/device-key.json" }
[podman]
socket = "/x"
`,
      "/etc/fleet-agent/config.toml",
    );
  assert.throws(
    () => config(`"nats://10.0.0.5:4222"`),
    /nats\.urls: Refusing to send an OIDC access token to NATS at nats:\/\/10\.0\.0\.5:4222 without TLS/,
  );
  config(`"nats://127.0.0.1:4222"`);
  config(`"tls://10.0.0.5:4222"`);
  config(`"nats://10.0.0.5:4222"`, `ca_file = "/etc/fleet-agent/nats-ca.pem"`);
});
