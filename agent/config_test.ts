import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_DEVICE_POLICY } from "../core/mod.ts";
import { agentConfigFile, devicePolicy, labelWarnings, renderAgentConfig } from "./config.ts";
import { ConfigFileError } from "../adapters/toml_config.ts";

const PATH = "/etc/fleet-agent/config.toml";

/** A minimal valid config with `extra` TOML inserted before the tables. */
function minimal(top: { deviceId?: string | null; extra?: string; nats?: string } = {}): string {
  const deviceId = top.deviceId === undefined
    ? `device_id = "pi-01"\n`
    : top.deviceId === null
    ? ""
    : `device_id = ${JSON.stringify(top.deviceId)}\n`;
  return `${deviceId}${top.extra ?? ""}
[nats]
${top.nats ?? `urls = ["nats://10.0.0.5:4222"]`}

[podman]
socket = "/run/podman/podman.sock"
`;
}

/** Asserts that parsing fails with a ConfigFileError naming the file and every `mentions`. */
function assertRejects(text: string, ...mentions: string[]): ConfigFileError {
  let caught: unknown;
  try {
    agentConfigFile.parse(text, PATH);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigFileError, `expected a ConfigFileError, got ${String(caught)}`);
  assert.equal(caught.path, PATH);
  assert.ok(caught.message.includes(PATH), `the message names the file: ${caught.message}`);
  assert.ok(!caught.message.includes("\n"), `the message is one line: ${caught.message}`);
  for (const m of mentions) {
    assert.ok(caught.message.includes(m), `the message mentions ${m}: ${caught.message}`);
  }
  return caught;
}

Deno.test("agentConfigFile.parse() reads a config that sets every field", () => {
  const config = agentConfigFile.parse(
    `device_id = "pi-01"
state_dir = "/srv/fleet-agent"

[labels]
site = "lab"
"fleet.example.com/tier" = "edge"

[nats]
urls = ["nats://10.0.0.5:4222", "tls://nats.example.com:4443", "10.0.0.6:4222"]
credentials = { type = "userpass", user = "pi-01", password_file = "/etc/fleet-agent/nats-password" }

[podman]
socket = "/run/user/1000/podman/podman.sock"

[remote]
exec = false
host_shell = true

[intervals]
heartbeat_seconds = 15
relist_seconds = 20
republish_seconds = 600
orphan_grace_seconds = 0
stop_timeout_seconds = 5
min_ready_seconds = 0
`,
    PATH,
  );
  assert.deepEqual(config, {
    device_id: "pi-01",
    labels: { site: "lab", "fleet.example.com/tier": "edge" },
    state_dir: "/srv/fleet-agent",
    nats: {
      urls: ["nats://10.0.0.5:4222", "tls://nats.example.com:4443", "10.0.0.6:4222"],
      credentials: {
        type: "userpass",
        user: "pi-01",
        password_file: "/etc/fleet-agent/nats-password",
      },
    },
    podman: { socket: "/run/user/1000/podman/podman.sock" },
    remote: { exec: false, host_shell: true },
    intervals: {
      heartbeat_seconds: 15,
      relist_seconds: 20,
      republish_seconds: 600,
      orphan_grace_seconds: 0,
      stop_timeout_seconds: 5,
      min_ready_seconds: 0,
    },
  });
});

Deno.test("agentConfigFile.parse() fills the defaults of a minimal config", () => {
  assert.deepEqual(agentConfigFile.parse(minimal(), PATH), {
    device_id: "pi-01",
    labels: {},
    state_dir: "/var/lib/fleet-agent",
    nats: { urls: ["nats://10.0.0.5:4222"], credentials: { type: "none" } },
    podman: { socket: "/run/podman/podman.sock" },
    remote: { exec: true, host_shell: false },
    intervals: {
      heartbeat_seconds: 30,
      relist_seconds: 30,
      republish_seconds: 300,
      orphan_grace_seconds: 60,
      stop_timeout_seconds: 10,
      min_ready_seconds: 5,
    },
  });
});

Deno.test("agentConfigFile.parse() accepts userpass with an inline password", () => {
  const config = agentConfigFile.parse(
    minimal({
      nats:
        `urls = ["nats://a:4222"]\ncredentials = { type = "userpass", user = "u", password = "p" }`,
    }),
    PATH,
  );
  assert.deepEqual(config.nats.credentials, { type: "userpass", user: "u", password: "p" });
});

Deno.test("agentConfigFile.parse() rejects a config without device_id, naming the field", () => {
  assertRejects(minimal({ deviceId: null }), "device_id");
});

for (const [bad, problem] of [["Pi.01", "dots"], ["pi*", "wildcards"], ["PI", "uppercase"]]) {
  Deno.test(`agentConfigFile.parse() rejects device_id ${JSON.stringify(bad)}, naming the value and the RFC 1123 rule`, () => {
    assertRejects(minimal({ deviceId: bad! }), "device_id", `"${bad}"`, problem!, "RFC 1123");
  });
}

Deno.test("agentConfigFile.parse() rejects an empty nats.urls", () => {
  assertRejects(minimal({ nats: "urls = []" }), "nats.urls", "at least one NATS server");
});

Deno.test("agentConfigFile.parse() rejects a NATS URL of another scheme", () => {
  assertRejects(
    minimal({ nats: `urls = ["nats://a:4222", "http://nats.example.com"]` }),
    "nats.urls[1]",
    "nats://host:4222",
  );
});

Deno.test("agentConfigFile.parse() rejects userpass with both password and password_file", () => {
  assertRejects(
    minimal({
      nats:
        `urls = ["nats://a:4222"]\ncredentials = { type = "userpass", user = "u", password = "p", password_file = "/p" }`,
    }),
    "nats.credentials",
    "exactly one of password and password_file",
  );
});

Deno.test("agentConfigFile.parse() rejects userpass with neither password nor password_file", () => {
  assertRejects(
    minimal({ nats: `urls = ["nats://a:4222"]\ncredentials = { type = "userpass", user = "u" }` }),
    "nats.credentials",
    "exactly one of password and password_file",
  );
});

Deno.test("agentConfigFile.parse() rejects a relative state_dir", () => {
  assertRejects(minimal({ extra: `state_dir = "var/lib/fleet"\n` }), "state_dir", "absolute path");
});

Deno.test("agentConfigFile.parse() rejects a negative min_ready_seconds, naming the field", () => {
  assertRejects(
    minimal().replace("[podman]", "[intervals]\nmin_ready_seconds = -1\n\n[podman]"),
    "intervals.min_ready_seconds",
    ">=0",
  );
});

Deno.test("agentConfigFile.parse() rejects an unknown credentials type, naming the field", () => {
  assertRejects(
    minimal({ nats: `urls = ["nats://a:4222"]\ncredentials = { type = "kerberos" }` }),
    "nats.credentials.type",
    "userpass",
  );
});

Deno.test("agentConfigFile.parse() says when the file is not valid TOML, and where", () => {
  assertRejects(`device_id = "pi-01\n[nats]\n`, "not valid TOML at line 1");
  assertRejects(`device_id = pi-01\n`, "not valid TOML at line 1");
  assertRejects(`device_id = "pi-01"\n\nlabels = [\n`, "not valid TOML at line 4");
});

Deno.test("agentConfigFile.parse() rejects a label with an invalid key, naming the key", () => {
  assertRejects(minimal({ extra: `labels = { "bad key!" = "x" }\n` }), "labels", `"bad key!"`);
  assertRejects(minimal({ extra: `labels = { "Example.com/tier" = "x" }\n` }), "labels", "prefix");
});

Deno.test("agentConfigFile.parse() reads a config of an earlier version whose label value is free text", () => {
  const config = agentConfigFile.parse(
    minimal({ extra: `labels = { site = "Building 7 / Room 3", tier = "edge" }\n` }),
    PATH,
  );
  assert.deepEqual(config.labels, { site: "Building 7 / Room 3", tier: "edge" });
});

Deno.test("labelWarnings() names each label no selector can match, why, and how to fix it", () => {
  const config = agentConfigFile.parse(
    minimal({
      extra:
        `labels = { site = "Building 7 / Room 3", tier = "edge", "example.com/note" = "!!" }\n`,
    }),
    PATH,
  );
  const [site, note, ...rest] = labelWarnings(config, PATH);
  assert.deepEqual(rest, []);
  assert.equal(
    site,
    `Label site="Building 7 / Room 3" in ${PATH} cannot be selected: label value "Building 7 / Room 3" ` +
      `must be at most 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with ` +
      `a letter or digit. The agent runs as before and reports the label as not selectable, but ` +
      `no deployment can target this device by it. To fix it, set site = "building-7-room-3" ` +
      `under [labels] in ${PATH}, and keep the text as an annotation: ` +
      `annotations = { site = "Building 7 / Room 3" } (or enroll the device again with ` +
      `--label site=building-7-room-3 --annotation site="Building 7 / Room 3")`,
  );
  assert.match(note ?? "", /^Label example\.com\/note="!!" in .* cannot be selected/);
  assert.match(note ?? "", /set a value of letters, digits/);
  assert.match(note ?? "", /annotations = \{ "example\.com\/note" = "!!" \}$/);
  assert.deepEqual(labelWarnings(agentConfigFile.parse(minimal(), PATH), PATH), []);
});

Deno.test("agentConfigFile.parse() reads a description and annotations", () => {
  const config = agentConfigFile.parse(
    minimal({
      extra: `description = "Gateway by the loading dock"\n` +
        `annotations = { room = "Building 7 / Room 3", "example.com/owner" = "Facilities" }\n`,
    }),
    PATH,
  );
  assert.equal(config.description, "Gateway by the loading dock");
  assert.deepEqual(config.annotations, {
    room: "Building 7 / Room 3",
    "example.com/owner": "Facilities",
  });
});

Deno.test("agentConfigFile.parse() rejects an annotation with an invalid key and a description over its limit", () => {
  assertRejects(
    minimal({ extra: `annotations = { "bad key!" = "x" }\n` }),
    "annotations",
    `"bad key!"`,
  );
  assertRejects(
    minimal({ extra: `description = "${"x".repeat(1025)}"\n` }),
    "description",
    "at most 1024 characters",
  );
});

Deno.test("agentConfigFile.parse() rejects a misspelt key, naming its table and the key it meant", () => {
  const error = assertRejects(
    minimal().replace("[podman]", "[intervals]\nheartbeat_second = 5\n\n[podman]"),
    "unknown key heartbeat_second in [intervals] (did you mean heartbeat_seconds?)",
  );
  assert.equal(
    error.message,
    `Invalid agent config ${PATH}: unknown key heartbeat_second in [intervals] (did you mean heartbeat_seconds?)`,
  );
});

Deno.test("agentConfigFile.parse() suggests a key of another table when it belongs there", () => {
  assertRejects(
    minimal({ nats: `urls = ["nats://a:4222"]\nheartbeat_second = 5` }),
    "unknown key heartbeat_second in [nats] (did you mean heartbeat_seconds in [intervals]?)",
  );
});

Deno.test("agentConfigFile.parse() reports a misspelt required key once, as a misspelling", () => {
  const error = assertRejects(
    minimal({ deviceId: null, extra: `device-id = "pi-01"\n` }),
    "unknown key device-id at the top level (did you mean device_id?)",
  );
  assert.doesNotMatch(error.message, /is required/);
  assertRejects(
    minimal().replace("socket =", "sockt ="),
    "unknown key sockt in [podman] (did you mean socket?)",
  );
});

Deno.test("agentConfigFile.parse() rejects unknown keys in inline tables and lists what is known", () => {
  assertRejects(
    minimal({
      nats:
        `urls = ["nats://a:4222"]\ncredentials = { type = "userpass", user = "u", passwrd = "p" }`,
    }),
    "unknown key passwrd in [nats.credentials] (did you mean password?)",
  );
  assertRejects(
    minimal({ extra: `colour = "blue"\n` }),
    "unknown key colour at the top level (known keys: device_id, labels, description, annotations, state_dir, nats, podman, policy, remote, intervals)",
  );
  // Label names are the user's own: any valid one is accepted.
  assert.deepEqual(
    agentConfigFile.parse(minimal({ extra: `labels = { sight = "lab" }\n` }), PATH).labels,
    {
      sight: "lab",
    },
  );
});

Deno.test("agentConfigFile.load() reads and validates a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-config-" });
  try {
    const path = join(dir, "config.toml");
    await Deno.writeTextFile(path, minimal());
    assert.equal((await agentConfigFile.load(path)).device_id, "pi-01");

    await Deno.writeTextFile(path, minimal({ deviceId: "Pi.01" }));
    await assert.rejects(agentConfigFile.load(path), (error: unknown) => {
      assert.ok(error instanceof ConfigFileError);
      assert.ok(error.message.includes(path) && error.message.includes("device_id"));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agentConfigFile.load() on a missing file says the file does not exist", async () => {
  const path = "/nonexistent/fleet-agent/config.toml";
  await assert.rejects(agentConfigFile.load(path), (error: unknown) => {
    assert.ok(error instanceof ConfigFileError);
    assert.equal(
      error.message,
      `Invalid agent config ${path}: the file does not exist`,
    );
    return true;
  });
});

Deno.test("renderAgentConfig() writes a file the agent reads back as the same config", () => {
  const input = {
    device_id: "pi-7",
    labels: { site: "lab", "fleet.nationtech.io/room": "room-4-north" },
    description: "Gateway by the loading dock",
    annotations: { room: "Room 4 (north)" },
    state_dir: "/var/lib/fleet-agent",
    nats: {
      urls: ["tls://10.0.0.5:4222", "tls://10.0.0.6:4222"],
      ca_file: "/etc/fleet-agent/nats-ca.pem",
      credentials: {
        type: "oidc" as const,
        issuer: "https://id.example.com",
        key_file: "/etc/fleet-agent/device-key.json",
        audience: "fleet-nats",
      },
    },
    podman: { socket: "/run/user/1001/podman/podman.sock" },
  };
  const text = renderAgentConfig(input, "/etc/fleet-agent/config.toml");
  assert.match(text, /^# Fleet agent configuration\. Edit with care/);
  const parsed = agentConfigFile.parse(text, "config.toml");
  assert.deepEqual(parsed.labels, input.labels);
  assert.equal(parsed.description, input.description);
  assert.deepEqual(parsed.annotations, input.annotations);
  assert.deepEqual(parsed.nats.urls, input.nats.urls);
  assert.equal(parsed.nats.ca_file, input.nats.ca_file);
  assert.equal(parsed.nats.credentials.type, "oidc");
  assert.equal(parsed.intervals.heartbeat_seconds, 30, "defaults stay the agent's");
  assert.doesNotMatch(text, /heartbeat_seconds/);
  assert.equal(renderAgentConfig(input, "x"), text, "the same input renders the same text");
  assert.throws(
    () => renderAgentConfig({ ...input, device_id: "pi.7" }, "/etc/fleet-agent/config.toml"),
    /Invalid agent config \/etc\/fleet-agent\/config.toml: device_id/,
  );
});

Deno.test("renderAgentConfig() refuses a label value no selector could match, with a valid form", () => {
  assert.throws(
    () =>
      renderAgentConfig({
        device_id: "pi-7",
        labels: { site: "Building 7 / Room 3" },
        nats: { urls: ["nats://10.0.0.5:4222"] },
        podman: { socket: "/run/podman/podman.sock" },
      }, PATH),
    (error: unknown) => {
      assert.ok(error instanceof ConfigFileError);
      assert.match(error.message, /label value "Building 7 \/ Room 3" must be at most 63/);
      assert.match(error.message, /site = "building-7-room-3"/);
      return true;
    },
  );
});

Deno.test("devicePolicy() of a config without [policy] is the default: no host paths, nothing privileged, Pi-sized limits", () => {
  const policy = devicePolicy(agentConfigFile.parse(minimal(), PATH));
  assert.deepEqual(policy, DEFAULT_DEVICE_POLICY);
  assert.deepEqual(policy.limits, { memoryMb: 512, cpus: 1, pids: 512 });
  assert.deepEqual(policy.hostPaths, []);
});

Deno.test("agentConfigFile.parse() reads a [policy] table and devicePolicy() carries every field", () => {
  const config = agentConfigFile.parse(
    `${minimal()}
[policy]
privileged = true
host_network = true
registries = ["registry.example.com", "docker.io/myorg"]
require_digest = true

[policy.limits]
memory_mb = 1024

[[policy.host_paths]]
prefix = "/srv/fleet"

[[policy.host_paths]]
prefix = "/srv/fleet/data"
writable = true
`,
    PATH,
  );
  assert.deepEqual(devicePolicy(config), {
    hostPaths: [{ prefix: "/srv/fleet", writable: false }, {
      prefix: "/srv/fleet/data",
      writable: true,
    }],
    privileged: true,
    hostNetwork: true,
    hostPid: false,
    limits: { memoryMb: 1024, cpus: 1, pids: 512 },
    registries: ["registry.example.com", "docker.io/myorg"],
    requireDigest: true,
  });
});

Deno.test("agentConfigFile.parse() rejects a host path prefix that is relative or has '..', naming it", () => {
  assertRejects(
    `${minimal()}\n[[policy.host_paths]]\nprefix = "/srv/../etc"\n`,
    "policy.host_paths[0].prefix",
    "/srv/../etc has '.' or '..' segments",
  );
  assertRejects(
    `${minimal()}\n[[policy.host_paths]]\nprefix = "srv"\n`,
    "srv is not an absolute path",
  );
});

Deno.test("agentConfigFile.parse() rejects a misspelt policy key instead of silently keeping the default", () => {
  assertRejects(`${minimal()}\n[policy]\nhost_netwrk = true\n`, "host_netwrk");
  assertRejects(`${minimal()}\n[policy.limits]\nmemory = 100\n`, "memory");
});

Deno.test("the agent config README.md shows, [policy] included, is valid as written", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("### Agent configuration"));
  const toml = /```toml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(toml, "README.md has a TOML block under Agent configuration");
  const policy = devicePolicy(agentConfigFile.parse(toml, "README.md"));
  assert.deepEqual(
    policy.limits,
    DEFAULT_DEVICE_POLICY.limits,
    "the defaults shown are the defaults",
  );
  assert.deepEqual(policy.hostPaths, [{ prefix: "/srv/fleet", writable: false }]);
});
