import assert from "node:assert/strict";
import { join } from "node:path";
import * as z from "zod";
import { closest, ConfigFileError, TomlConfigFile, unknownKeys } from "./toml_config.ts";

const Toy = z.object({
  name: z.string(),
  retry_seconds: z.number().positive().default(5),
  server: z.object({
    url: z.string(),
    auth: z.discriminatedUnion("type", [
      z.object({ type: z.literal("token"), token_file: z.string() }),
      z.object({ type: z.literal("none") }),
    ]).default({ type: "none" }),
  }),
  tags: z.record(z.string(), z.string()).default({}),
  mounts: z.array(z.object({ source: z.string(), read_only: z.boolean().default(false) }))
    .default([]),
});

const toyConfigFile = new TomlConfigFile("toy config", Toy);

function problem(text: string): string {
  try {
    toyConfigFile.parse(text, "toy.toml");
  } catch (error) {
    assert.ok(error instanceof ConfigFileError, String(error));
    assert.equal(error.kind, "usage");
    assert.equal(error.path, "toy.toml");
    assert.ok(!error.message.includes("\n"), error.message);
    assert.ok(error.message.startsWith("Invalid toy config toy.toml: "), error.message);
    return error.detail;
  }
  assert.fail("expected a ConfigFileError");
}

const VALID = `name = "a"
[server]
url = "nats://x:4222"
`;

Deno.test("TomlConfigFile.parse() returns the typed value with defaults", () => {
  const config = toyConfigFile.parse(
    `${VALID}auth = { type = "token", token_file = "/t" }\n[tags]\n"any.key/here" = "v"\n` +
      `[[mounts]]\nsource = "/srv"\n`,
    "toy.toml",
  );
  assert.deepEqual(config, {
    name: "a",
    retry_seconds: 5,
    server: { url: "nats://x:4222", auth: { type: "token", token_file: "/t" } },
    tags: { "any.key/here": "v" },
    mounts: [{ source: "/srv", read_only: false }],
  });
});

Deno.test("TomlConfigFile.parse() names the line and column of a TOML syntax error", () => {
  assert.equal(
    problem(`name = "a"\nretry_seconds = \n`),
    "not valid TOML at line 2, column 17 (invalid value)",
  );
});

Deno.test("TomlConfigFile.parse() refuses unknown keys at every level, with the key meant", () => {
  assert.equal(
    problem(`retry_second = 3\n${VALID}`),
    "unknown key retry_second at the top level (did you mean retry_seconds?)",
  );
  assert.equal(
    problem(`${VALID}URL = "y"\n`),
    "unknown key URL in [server] (did you mean url?)",
  );
  assert.equal(
    problem(`${VALID}auth = { type = "token", token-file = "/t" }\n`),
    "unknown key token-file in [server.auth] (did you mean token_file?)",
  );
  assert.equal(
    problem(`${VALID}[[mounts]]\nsource = "/a"\nreadonly = true\n`),
    "unknown key readonly in [mounts.0] (did you mean read_only?)",
  );
  assert.equal(
    problem(`${VALID}retry_seconds = 3\n`),
    "unknown key retry_seconds in [server] (did you mean retry_seconds at the top level?)",
  );
  assert.equal(
    problem(`${VALID}colour = "red"\n`),
    "unknown key colour in [server] (known keys: url, auth)",
  );
});

Deno.test("TomlConfigFile.parse() reports unknown keys and invalid values together", () => {
  assert.equal(
    problem(`name = "a"\nretry_seconds = 0\nnmae = "b"\n[server]\nurl = "u"\n`),
    "unknown key nmae at the top level (did you mean name?); " +
      "retry_seconds: Too small: expected number to be >0",
  );
  // A misspelt required key: the misspelling explains the missing key.
  assert.equal(
    problem(`nam = "a"\n[server]\nurl = "u"\n`),
    "unknown key nam at the top level (did you mean name?)",
  );
});

Deno.test("unknownKeys() looks into the union branch the value belongs to", () => {
  const keys = unknownKeys(Toy, {
    name: "a",
    server: { url: "u", auth: { type: "none", token_file: "/t" } },
  });
  assert.deepEqual(keys, [{
    table: ["server", "auth"],
    key: "token_file",
    known: ["type"],
    suggestion: { table: ["server", "auth"], key: "token_file" },
  }]);
});

Deno.test("closest() forgives case, '-' for '_', small typos and a missing end", () => {
  const known = ["heartbeat_seconds", "relist_seconds", "socket", "max_ttl_seconds"];
  assert.equal(closest("heartbeat_second", known), "heartbeat_seconds");
  assert.equal(closest("Heartbeat-Seconds", known), "heartbeat_seconds");
  assert.equal(closest("sokcet", known), "socket");
  assert.equal(closest("max_ttl", known), "max_ttl_seconds");
  assert.equal(closest("colour", known), undefined);
  assert.equal(closest("x", ["y"]), "y");
  assert.equal(closest("ab", ["xy"]), undefined);
});

Deno.test("TomlConfigFile.load() says why the file cannot be read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-toml-" });
  try {
    const path = join(dir, "toy.toml");
    await Deno.writeTextFile(path, VALID);
    assert.equal((await toyConfigFile.load(path)).name, "a");
    for (
      const [target, reason] of [
        [join(dir, "missing.toml"), "the file does not exist"],
        [dir, "the file is a directory"],
      ]
    ) {
      await assert.rejects(toyConfigFile.load(target!), (error: unknown) => {
        assert.ok(error instanceof ConfigFileError);
        assert.equal(error.message, `Invalid toy config ${target}: ${reason}`);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
