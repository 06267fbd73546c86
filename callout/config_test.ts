import assert from "node:assert/strict";
import { join } from "node:path";
import { authorizerPolicy, calloutConfigFile, loadCalloutKeys } from "./config.ts";
import { ConfigFileError } from "../adapters/toml_config.ts";
import { generateSeeds, publicKeyOfSeed } from "./keys.ts";

const MINIMAL = `
[nats]
urls = ["tls://10.0.0.5:4222"]
user = "fleet-callout"
password = "pw"

[account]
issuer_seed_file = "/etc/fleet-callout/issuer.nk"

[oidc]
issuer = "https://idp.example.com/realms/fleet"
audience = "fleet-nats"
roles = { fleet-device = "device" }
`;

Deno.test("calloutConfigFile.parse() fills the defaults", () => {
  const config = calloutConfigFile.parse(MINIMAL, "callout.toml");
  assert.deepStrictEqual(config, {
    nats: { urls: ["tls://10.0.0.5:4222"], user: "fleet-callout", password: "pw" },
    account: { name: "FLEET", issuer_seed_file: "/etc/fleet-callout/issuer.nk" },
    oidc: {
      issuer: "https://idp.example.com/realms/fleet",
      audience: "fleet-nats",
      access_token_clients: [],
      device_id_claim: "sub",
      role_claim: "roles",
      strip_prefix: "",
      roles: { "fleet-device": "device" },
    },
    jwt: { max_ttl_seconds: 3600 },
  });
  assert.deepStrictEqual(authorizerPolicy(config), {
    deviceIdClaim: "sub",
    roleClaim: "roles",
    stripPrefix: "",
    roles: { "fleet-device": "device" },
    maxTtlSeconds: 3600,
  });
});

Deno.test("calloutConfigFile.parse() reads every field, Zitadel's role claim included", () => {
  const config = calloutConfigFile.parse(
    `
[nats]
urls = ["tls://nats-1:4222", "nats-2:4222"]
user = "callout_1"
password_file = "/run/secrets/nats"

[account]
name = "EDGE"
issuer_seed_file = "/k/issuer.nk"
xkey_seed_file = "/k/xkey.nk"

[oidc]
issuer = "https://zitadel.example.com"
audience = "123456@fleet"
device_id_claim = "preferred_username"
role_claim = "urn:zitadel:iam:org:project:roles"
strip_prefix = "device-"

[oidc.roles]
fleet-device = "device"
fleet-operator = "operator"
fleet-admin = "admin"

[jwt]
max_ttl_seconds = 900
`,
    "callout.toml",
  );
  assert.equal(config.account.name, "EDGE");
  assert.equal(config.account.xkey_seed_file, "/k/xkey.nk");
  assert.deepStrictEqual(authorizerPolicy(config), {
    deviceIdClaim: "preferred_username",
    roleClaim: "urn:zitadel:iam:org:project:roles",
    stripPrefix: "device-",
    roles: { "fleet-device": "device", "fleet-operator": "operator", "fleet-admin": "admin" },
    maxTtlSeconds: 900,
  });
});

function rejects(text: string, message: RegExp): void {
  assert.throws(() => calloutConfigFile.parse(text, "/etc/fleet-callout/callout.toml"), (err) => {
    assert.ok(err instanceof ConfigFileError, String(err));
    assert.ok(err.message.startsWith("Invalid callout config /etc/fleet-callout/callout.toml: "));
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("calloutConfigFile.parse() names the field that breaks its rule", () => {
  rejects(
    MINIMAL.replace(`roles = { fleet-device = "device" }`, `roles = { x = "root" }`),
    /oidc\.roles\.x: /,
  );
  rejects(
    MINIMAL.replace(`roles = { fleet-device = "device" }`, `roles = {}`),
    /oidc\.roles: map at least one/,
  );
  rejects(MINIMAL.replace(`audience = "fleet-nats"`, ""), /oidc\.audience: is required/);
  rejects(
    MINIMAL.replace(`https://idp.example.com/realms/fleet`, "idp"),
    /oidc\.issuer: must be an http\(s\) URL/,
  );
  rejects(
    MINIMAL.replace(`password = "pw"`, ""),
    /nats: set exactly one of password and password_file/,
  );
  rejects(
    MINIMAL.replace(`password = "pw"`, `password = "pw"\npassword_file = "/p"`),
    /exactly one/,
  );
  rejects(MINIMAL.replace(`user = "fleet-callout"`, `user = "a b"`), /nats\.user: use letters/);
  rejects(
    MINIMAL.replace(`"tls://10.0.0.5:4222"`, `"http://x"`),
    /nats\.urls\[0\]: must look like/,
  );
  rejects(
    MINIMAL.replace(`"/etc/fleet-callout/issuer.nk"`, `"issuer.nk"`),
    /account\.issuer_seed_file: must be an absolute path/,
  );
  rejects(
    MINIMAL.replace(`[account]`, `[account]\nname = "FLEET.>"`),
    /account\.name: use letters/,
  );
  rejects(MINIMAL + `[jwt]\nmax_ttl_seconds = 0\n`, /jwt\.max_ttl_seconds: /);
  rejects(
    MINIMAL + `[account.jetstream]\nmax_file = "lots"\n`,
    /account\.jetstream\.max_file: must be a number of bytes, or one with K, M, G or T/,
  );
  rejects(
    MINIMAL + `[account.jetstream]\nmax_consumers = -1\n`,
    /account\.jetstream\.max_consumers/,
  );
  rejects("[nats\n", /not valid TOML/);
});

Deno.test("calloutConfigFile.parse() refuses an http issuer beyond loopback, a bad pin, and wss without TLS", () => {
  const withIssuer = (issuer: string) =>
    MINIMAL.replace("https://idp.example.com/realms/fleet", issuer);
  rejects(
    withIssuer("http://idp.example.com"),
    /oidc\.issuer: the issuer "http:\/\/idp\.example\.com" is not https/,
  );
  assert.equal(
    calloutConfigFile.parse(withIssuer("http://127.0.0.1:8080"), "c.toml").oidc.issuer,
    "http://127.0.0.1:8080",
  );
  rejects(
    MINIMAL.replace(`password = "pw"`, `password = "pw"\npin = "AB:CD"`),
    /nats\.pin: must be sha256\/\/<base64>/,
  );
  rejects(
    MINIMAL + `[server.websocket]\nlisten = "0.0.0.0:8443"\n`,
    /server: websocket needs \[server\.tls\]/,
  );
});

Deno.test("calloutConfigFile.parse() refuses to send the callout's password in clear beyond loopback", () => {
  const withUrls = (urls: string) =>
    MINIMAL.replace(`urls = ["tls://10.0.0.5:4222"]`, `urls = [${urls}]`);
  rejects(
    withUrls(`"nats://10.0.0.5:4222"`),
    /nats\.urls: Refusing to send the callout's password to NATS at nats:\/\/10\.0\.0\.5:4222 without TLS/,
  );
  calloutConfigFile.parse(withUrls(`"nats://127.0.0.1:4222"`), "c.toml");
  calloutConfigFile.parse(withUrls(`"tls://10.0.0.5:4222"`), "c.toml");
});

Deno.test("calloutConfigFile.parse() rejects an unknown key, naming its table and the key it meant", () => {
  rejects(
    MINIMAL.replace(`audience = "fleet-nats"`, `audience = "fleet-nats"\nrole_claims = "roles"`),
    /^Invalid callout config \/etc\/fleet-callout\/callout\.toml: unknown key role_claims in \[oidc\] \(did you mean role_claim\?\)$/,
  );
  rejects(
    MINIMAL + `[jwt]\nmax_ttl = 600\n`,
    /unknown key max_ttl in \[jwt\] \(did you mean max_ttl_seconds\?\)/,
  );
  // Misspelt, a required key is reported as a misspelling, not also as missing.
  rejects(
    MINIMAL.replace(`issuer_seed_file =`, `issuer_seedfile =`),
    /: unknown key issuer_seedfile in \[account\] \(did you mean issuer_seed_file\?\)$/,
  );
  rejects(MINIMAL + `[jtw]\n`, /unknown key jtw at the top level \(did you mean jwt\?\)/);
  rejects(
    MINIMAL.replace(`[nats]`, `[nats]\nxkey_seed_file = "/k/xkey.nk"`),
    /unknown key xkey_seed_file in \[nats\] \(did you mean xkey_seed_file in \[account\]\?\)/,
  );
  // Role names are the provider's own: any is a key of [oidc.roles].
  assert.deepStrictEqual(
    calloutConfigFile.parse(
      MINIMAL.replace(`{ fleet-device = "device" }`, `{ "urn:x:roles/dev" = "device" }`),
      "c.toml",
    ).oidc.roles,
    { "urn:x:roles/dev": "device" },
  );
});

Deno.test("calloutConfigFile.load() names a missing file", async () => {
  await assert.rejects(calloutConfigFile.load("/nonexistent/callout.toml"), (err) => {
    assert.ok(err instanceof ConfigFileError);
    assert.equal(
      err.message,
      "Invalid callout config /nonexistent/callout.toml: the file does not exist",
    );
    return true;
  });
});

Deno.test("loadCalloutKeys() loads the seeds and the password file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { issuerSeed, xkeySeed } = generateSeeds();
    await Deno.writeTextFile(join(dir, "issuer.nk"), issuerSeed + "\n");
    await Deno.writeTextFile(join(dir, "xkey.nk"), xkeySeed);
    await Deno.writeTextFile(join(dir, "pw"), "s3cret\n");
    const config = calloutConfigFile.parse(
      MINIMAL.replace(`password = "pw"`, `password_file = "${dir}/pw"`)
        .replace("/etc/fleet-callout/issuer.nk", `${dir}/issuer.nk`)
        .replace("[account]", `[account]\nxkey_seed_file = "${dir}/xkey.nk"`),
      "c.toml",
    );
    const keys = await loadCalloutKeys(config, "c.toml");
    assert.equal(keys.password, "s3cret");
    assert.equal(keys.issuer.getPublicKey(), publicKeyOfSeed(issuerSeed));
    assert.equal(keys.xkey?.getPublicKey(), publicKeyOfSeed(xkeySeed));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCalloutKeys() names the field and the file that is wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { issuerSeed, xkeySeed } = generateSeeds();
    await Deno.writeTextFile(join(dir, "issuer.nk"), issuerSeed);
    await Deno.writeTextFile(join(dir, "xkey.nk"), xkeySeed);
    await Deno.writeTextFile(join(dir, "empty"), "\n");
    const base = MINIMAL.replace("/etc/fleet-callout/issuer.nk", `${dir}/issuer.nk`);
    const cases: [string, RegExp][] = [
      [
        base.replace(`${dir}/issuer.nk`, `${dir}/xkey.nk`),
        /account\.issuer_seed_file: .*xkey\.nk is not an account seed/,
      ],
      [
        base.replace("[account]", `[account]\nxkey_seed_file = "${dir}/issuer.nk"`),
        /account\.xkey_seed_file: .*issuer\.nk is not a curve \(xkey\) seed/,
      ],
      [
        base.replace(`${dir}/issuer.nk`, `${dir}/missing.nk`),
        /account\.issuer_seed_file: .*missing\.nk does not exist/,
      ],
      [
        base.replace(`password = "pw"`, `password_file = "${dir}/empty"`),
        /nats\.password_file: .*empty is empty/,
      ],
    ];
    for (const [text, message] of cases) {
      await assert.rejects(
        loadCalloutKeys(calloutConfigFile.parse(text, "c.toml"), "c.toml"),
        (err) => {
          assert.ok(err instanceof ConfigFileError, String(err));
          assert.match(err.message, /^Invalid callout config c\.toml: /);
          assert.match(err.message, message);
          return true;
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
