import assert from "node:assert/strict";
import { isUntouched, maskSecrets, stampConfig } from "./config_stamp.ts";

Deno.test("a stamped config is untouched until someone changes any byte of it", async () => {
  const body = 'device_id = "pi-1"\n\n[nats]\nurls = ["nats://10.0.0.5:4222"]\n';
  const stamped = await stampConfig(body);
  assert.ok(stamped.endsWith(body));
  assert.match(
    stamped.split("\n")[0]!,
    /^# Written by fleet device enroll; content sha256 [0-9a-f]{64}$/,
  );
  assert.equal(await isUntouched(stamped), true);
  assert.equal(await stampConfig(body), stamped, "the same body, the same stamp");
  assert.equal(await isUntouched(stamped + "# local tweak\n"), false);
  assert.equal(await isUntouched(stamped.replace("10.0.0.5", "10.0.0.6")), false);
  assert.equal(await isUntouched(body), false, "a config without a stamp is someone else's");
  assert.equal(await isUntouched(""), false);
});

Deno.test("maskSecrets() hides password values in tables and inline tables, nothing else", () => {
  const text = [
    'user = "pi"',
    'password = "s3cr\\"et"',
    'credentials = { type = "userpass", user = "u", password = \'lit\' }',
    'password_file = "/etc/fleet-agent/nats-password"',
  ].join("\n");
  assert.equal(
    maskSecrets(text),
    [
      'user = "pi"',
      'password = "********"',
      'credentials = { type = "userpass", user = "u", password = "********" }',
      'password_file = "/etc/fleet-agent/nats-password"',
    ].join("\n"),
  );
});
