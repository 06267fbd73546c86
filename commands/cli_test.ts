/**
 * The CLI as users run it: each test spawns the real program (`deno run -A main.ts ...`)
 * and checks its stdout, stderr and exit code; the NATS tests use a real nats-server.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { connect } from "@nats-io/transport-node";
import { API_VERSION, Buckets, Deployment, DEVICE_ID_LABEL, keys } from "../core/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startTestProvider, ZITADEL_ROLES_CLAIM } from "../testing/oidc_provider.ts";
import {
  authorizerPolicy,
  calloutConfigFile,
  calloutServerConfig,
  loadCalloutKeys,
  serverSettings,
  startCalloutService,
} from "../callout/mod.ts";
import { createTokenVerifier } from "../adapters/oidc/mod.ts";
import { ensureBucket, installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { registerTestDevice, testDeviceInfo } from "../testing/devices.ts";
import { testConnection } from "../testing/nats.ts";
import { writeCalloutFiles } from "../testing/callout.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const WEB_YAML = "fixtures/deployments/web.yaml";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The environment of this process without FLEET_* settings, so flags are what counts. */
function cleanEnv(): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  return { ...env, NO_COLOR: "1" };
}

/** Runs `fleet <args>` from the project folder. */
function fleet(...args: string[]): Promise<Run> {
  return fleetWithEnv({}, ...args);
}

/** Runs `fleet <args>` with these FLEET_* variables set. */
function fleetWithEnv(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return fleetWith({ env }, ...args);
}

/** Runs `fleet <args>` with these FLEET_* variables, this text on stdin, from this folder. */
async function fleetWith(
  options: { env?: Record<string, string>; stdin?: string; cwd?: string },
  ...args: string[]
): Promise<Run> {
  return await run(Deno.execPath(), ["run", "-A", MAIN, ...args], options);
}

async function run(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; cwd?: string },
): Promise<Run> {
  const started = performance.now();
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd ?? ROOT,
    env: { ...cleanEnv(), ...options.env },
    clearEnv: true,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

function describe(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

/** Asserts a successful run and returns its stdout. */
function assertOk(run: Run): string {
  assert.equal(run.code, 0, describe(run));
  assert.equal(run.stderr, "", `nothing on stderr on success\n${describe(run)}`);
  return run.stdout;
}

/** Asserts that stderr is one readable line (no stack trace) that mentions every `mentions`. */
function assertOneLineError(run: Run, code: number, ...mentions: string[]): string {
  assert.equal(run.code, code, describe(run));
  assert.equal(run.stdout, "", describe(run));
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `one line on stderr\n${describe(run)}`);
  const line = lines[0]!;
  assert.doesNotMatch(line, /\bat .*:\d+:\d+/, "no stack trace");
  for (const m of mentions) assert.ok(line.includes(m), `stderr mentions ${m}\n${describe(run)}`);
  return line;
}

/** Help text with whitespace collapsed, so wrapping does not matter. */
function flat(text: string): string {
  return text.replace(/\s+/g, " ");
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// --- help and version

Deno.test("fleet --help lists the commands and exits 0", async () => {
  const help = flat(assertOk(await fleet("--help")));
  for (const word of ["Usage: fleet", "--version", "--help", "operator", "agent", "apply"]) {
    assert.ok(help.includes(word), `mentions ${word}: ${help}`);
  }
  for (const word of ["delete", "get", "demo"]) assert.ok(help.includes(` ${word} `), word);
});

Deno.test("fleet --version prints the version from deno.json", async () => {
  assert.equal(assertOk(await fleet("--version")), `${denoJson.version}\n`);
});

const helpCases: [string[], string[]][] = [
  [["apply"], [
    "-f, --filename <file>",
    "a directory of such files, or '-' for stdin; repeatable",
    "--print",
    "--target <target>",
    "--nats-url <urls>",
    "deployment [options]",
    "unknown field",
  ]],
  [["apply", "deployment"], [
    "-f, --filename <file>",
    "--name <name>",
    "-n, --namespace <namespace>",
    "--image <image>",
    "--port <host:container[/udp]>",
    "--env <NAME=value>",
    "--volume <host:container[:ro]>",
    "--restart <policy>",
    "--selector <selector>",
    "--all-bound-devices",
    "--print",
    "--nats-url <urls>",
    "env: FLEET_NATS_URL",
  ]],
  [["get", "deployments"], [
    "-n, --namespace <namespace>",
    "-o, --output <format>",
    "-w, --watch",
    "--nats-url <urls>",
    "MATCHED",
  ]],
  [["agent", "run"], [
    "-c, --config <path>",
    `default: "/etc/fleet-agent/config.toml"`,
    "env: FLEET_AGENT_CONFIG",
    `--log-level <level> how much to log (choices: "debug", "info", "warn", "error", default: "info"`,
    "--log-format <format>",
  ]],
  [["operator", "run"], [
    "--source <source>",
    "--nats-url <urls>",
    "--replicas <n>",
    "--stale-after <seconds>",
    `--log-level <level> how much to log (choices: "debug", "info", "warn", "error", default: "info"`,
  ]],
  [["device", "enroll"], [
    "--device-id <id>",
    "env: FLEET_DEVICE_ID",
    "--target <ssh-url>",
    "--label <key=value>",
    "--description <text>",
    "--annotation <key=text>",
    "--package-dir <dir>",
    "--device-nats-url <urls>",
    "--zitadel-url <url>",
    "-y, --yes",
    "--heartbeat-timeout <seconds>",
  ]],
  [["device", "label"], [
    "key=value to set a label, key- to remove it",
    "--overwrite",
    "env: FLEET_LABEL_OVERWRITE",
    "--from-reported",
    "--target <target>",
    "--nats-url <urls>",
  ]],
  [["vm", "provision"], [
    "--name <name>",
    "--no-enroll",
    "--label <key=value>",
    "--device-nats-url <urls>",
    "10.0.2.2",
  ]],
  [["demo"], [
    "--auto",
    `--log-level <level> how much to log (choices: "debug", "info", "warn", "error", default: "warn"`,
  ]],
];

for (const [command, flags] of helpCases) {
  Deno.test(`fleet ${command.join(" ")} --help shows its flags and exits 0`, async () => {
    const help = flat(assertOk(await fleet(...command, "--help")));
    assert.match(help, new RegExp(`^Usage: fleet ${command.join(" ")}(\\|\\w+)? \\[options\\]`));
    for (const flag of flags) assert.ok(help.includes(flag), `mentions ${flag}:\n${help}`);
  });
}

// --- usage errors: exit code 2, one readable line

const RFC = "RFC 1123";

const usageCases: [string, string[], string[]][] = [
  [
    "an invalid deployment name",
    ["apply", "deployment", "--name", "Bad_Name", "--image", "x", "--print"],
    [`"Bad_Name"`, "deployment name", RFC],
  ],
  [
    "a selector with an empty set",
    ["apply", "deployment", "--name", "web", "--image", "x", "--selector", "a in ()", "--print"],
    [`"a in ()"`, "at least one value"],
  ],
  [
    "a port without a host port",
    ["apply", "deployment", "--name", "web", "--image", "x", "--port", "80", "--print"],
    [`"80"`, "hostPort:containerPort"],
  ],
  [
    "an environment variable without a value",
    ["apply", "deployment", "--name", "web", "--image", "x", "--env", "NOVALUE", "--print"],
    [`"NOVALUE"`, "NAME=value"],
  ],
  [
    "a volume with a relative host path",
    ["apply", "deployment", "--name", "web", "--image", "x", "--volume", "relative:/x", "--print"],
    [`"relative:/x"`, "absolute"],
  ],
  [
    "apply deployment with no selector, which would reach every device by mistake",
    ["apply", "deployment", "--name", "web", "--image", "x", "-n", "team-a", "--print"],
    ["--selector", "--all-bound-devices", "namespace team-a"],
  ],
  [
    "apply -f of a deployment with an empty targetSelector",
    ["apply", "-f", "fixtures/deployments/empty_selector.yaml", "--print"],
    ["spec.targetSelector is empty", "targetAllBoundDevices: true"],
  ],
  [
    "apply deployment without --image",
    ["apply", "deployment", "--name", "web", "--print"],
    ["--image"],
  ],
  [
    "apply without -f",
    ["apply", "--print"],
    ["apply needs -f", "fleet apply deployment --name NAME --image IMAGE"],
  ],
  ["an unknown command", ["frob"], ["unknown command", "'frob'", "fleet --help"]],
  [
    "an unknown flag",
    ["apply", "deployment", "--frob"],
    ["unknown option", "'--frob'", "fleet apply deployment --help"],
  ],
  [
    "a misspelt flag, with the suggestion on the same line",
    ["apply", "deployment", "--nmae", "web"],
    ["unknown option", "'--nmae'", "Did you mean --name?"],
  ],
  ["an invalid name to delete", ["delete", "deployment", "dev*"], [`"dev*"`, RFC]],
  [
    "-f combined with --image",
    ["apply", "deployment", "-f", WEB_YAML, "--image", "x", "--print"],
    ["-f", "--image"],
  ],
  [
    "-f combined with -n, which the file's namespace would silently override",
    ["apply", "deployment", "-f", WEB_YAML, "-n", "prod", "--print"],
    ["-f", "--namespace"],
  ],
  [
    "an empty --nats-url",
    ["get", "deployments", "--nats-url", ""],
    ["--nats-url", `""`, "nats://127.0.0.1:4222"],
  ],
  [
    "a --nats-url with a space in a URL",
    [
      "apply",
      "deployment",
      ...["--name", "web", "--image", "x", "--selector", "site=a"],
      ...["--nats-url", "nats://a b:4222"],
    ],
    [`"nats://a b:4222"`, "without spaces"],
  ],
  [
    "device enroll with an invalid device id",
    ["device", "enroll", "--device-id", "Pi_7", "--target", "ssh://pi@192.0.2.1"],
    [`"Pi_7"`, "device id", RFC],
  ],
  [
    "device enroll with a label that is not key=value",
    ["device", "enroll", "--device-id", "pi-7", "--label", "lab", "--target", "ssh://pi@192.0.2.1"],
    [`--label "lab"`, "key=value"],
  ],
  [
    "device enroll with a label value no selector could match",
    [
      "device",
      "enroll",
      "--device-id",
      "pi-7",
      "--label",
      "site=Building 7 / Room 3",
      "--target",
      "ssh://pi@192.0.2.1",
    ],
    [
      `--label site="Building 7 / Room 3"`,
      "at most 63 characters",
      "--label site=building-7-room-3",
      `--annotation site="Building 7 / Room 3"`,
    ],
  ],
  [
    "vm provision with a label value no selector could match",
    ["vm", "provision", "--name", "vm1", "--label", "room=Lab A, 2nd floor"],
    [`--label room="Lab A, 2nd floor"`, "at most 63 characters", "--label room=lab-a-2nd-floor"],
  ],
  [
    "device enroll with an annotation whose key is not a label key",
    ["device", "enroll", "--device-id", "pi-7", "--annotation", "bad key=text"],
    ["--annotation", `"bad key"`],
  ],
  [
    "device enroll with a key but no issuer",
    ["device", "enroll", "--device-id", "pi-7", "--device-key", "k.json"],
    ["--device-key", "--device-oidc-issuer"],
  ],
  [
    "device enroll with Zitadel but no project",
    ["device", "enroll", "--device-id", "pi-7", "--zitadel-url", "https://id.example.com"],
    ["--zitadel-url", "--zitadel-project-id"],
  ],
  [
    "device enroll with a secret on the command line (only from a file or standard input)",
    ["device", "enroll", "--device-id", "pi-7", "--zitadel-token", "admin-token"],
    ["--zitadel-token"],
  ],
  [
    "device enroll with a key lifetime that is not whole days",
    ["device", "enroll", "--device-id", "pi-7", "--key-lifetime", "0"],
    ["--key-lifetime", "0"],
  ],
  [
    "device enroll with a host key fingerprint that is not SHA256:...",
    ["device", "enroll", "--device-id", "pi-7", "--host-key-fingerprint", "MD5:aa:bb"],
    ["--host-key-fingerprint", "MD5:aa:bb", "SHA256:"],
  ],
  [
    "device rotate-key with no Zitadel to rotate it in",
    ["device", "rotate-key", "pi-7", "--target", "ssh://pi@192.0.2.1"],
    ["--zitadel-url"],
  ],
  [
    "device enroll with no packages to install",
    ["device", "enroll", "--device-id", "pi-7", "--package-dir", "/nonexistent/dist"],
    ["/nonexistent/dist", "deno task package"],
  ],
  [
    "device enroll with a target that is not ssh://user@host",
    [
      "device",
      "enroll",
      "--device-id",
      "pi-7",
      "--target",
      "pi@10.0.0.7",
      "--package-dir",
      "packaging",
    ],
    ["pi@10.0.0.7", "ssh://"],
  ],
  [
    "agent run with a missing config file",
    ["agent", "run", "--config", "/nonexistent/fleet/config.toml"],
    ["/nonexistent/fleet/config.toml", "does not exist"],
  ],
];

for (const [what, args, mentions] of usageCases) {
  Deno.test(`fleet exits 2 with one readable line for ${what}`, async () => {
    assertOneLineError(await fleet(...args), 2, ...mentions);
  });
}

Deno.test("fleet apply deployment -f exits 2 for a file whose Deployment has an invalid name", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.yaml");
    const text = await Deno.readTextFile(join(ROOT, WEB_YAML));
    await Deno.writeTextFile(
      path,
      text.replace("  name: web\n  namespace:", "  name: Web.1\n  namespace:"),
    );
    assertOneLineError(
      await fleet("apply", "deployment", "-f", path, "--print"),
      2,
      path,
      "metadata.name",
      `"Web.1"`,
      RFC,
    );
  });
});

Deno.test("fleet apply -f takes a Progressive rollout and warns of a batch too small for its threshold", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "progressive.yaml");
    const text = await Deno.readTextFile(join(ROOT, WEB_YAML));
    await Deno.writeTextFile(
      path,
      text.replace(
        /\nspec:\n/,
        "\nspec:\n  rollout:\n    strategy: Progressive\n    successThreshold: 90%\n" +
          "    batches: [{ limit: 2 }]\n",
      ),
    );
    const result = await fleet("apply", "-f", path, "--print");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /strategy: Progressive/);
    assert.match(
      result.stderr,
      /batch 1 has 2 devices: a successThreshold of 90% of 2 is 2 \(rounded up\), so every device must succeed/,
    );
  });
});

Deno.test("fleet apply deployment -f exits 2 for a file that is not YAML", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "broken.yaml");
    await Deno.writeTextFile(path, "spec: [\n");
    const line = assertOneLineError(
      await fleet("apply", "deployment", "-f", path, "--print"),
      2,
      path,
      "not valid YAML",
    );
    assert.doesNotMatch(line, /:$/);
  });
});

Deno.test("fleet agent run exits 2 naming the file and field of an invalid device_id", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "config.toml");
    await Deno.writeTextFile(
      path,
      `device_id = "Pi.01"\n[nats]\nurls = ["nats://127.0.0.1:4222"]\n[podman]\nsocket = "/run/podman/podman.sock"\n`,
    );
    assertOneLineError(
      await fleet("agent", "run", "--config", path),
      2,
      path,
      "device_id",
      `"Pi.01"`,
      RFC,
    );
  });
});

// --- apply deployment --print

Deno.test("fleet apply deployment --print outputs the Deployment the flags describe", async () => {
  const yaml = assertOk(
    await fleet(
      "apply",
      "deployment",
      "--name",
      "web",
      "-n",
      "retail",
      "--image",
      "localhost/web:1",
      "--port",
      "8080:80",
      "--port",
      "8053:53/udp",
      "--env",
      "NGINX_HOST=shop.example.com",
      "--env",
      "OPTS=a=b",
      "--volume",
      "/srv/web:/usr/share/nginx/html:ro",
      "--volume",
      "/srv/log:/var/log/nginx",
      "--restart",
      "always",
      "--selector",
      "site=lab,tier in (edge,core)",
      "--print",
    ),
  );
  const expected: Deployment = {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name: "web", namespace: "retail" },
    spec: {
      targetSelector: {
        matchLabels: { site: "lab" },
        matchExpressions: [{ key: "tier", operator: "In", values: ["edge", "core"] }],
      },
      score: {
        type: "PodmanV0",
        data: {
          services: [{
            name: "web",
            image: "localhost/web:1",
            ports: ["8080:80", "8053:53/udp"],
            env: [
              { name: "NGINX_HOST", value: "shop.example.com" },
              { name: "OPTS", value: "a=b" },
            ],
            volumes: [
              { hostPath: "/srv/web", containerPath: "/usr/share/nginx/html", readOnly: true },
              { hostPath: "/srv/log", containerPath: "/var/log/nginx", readOnly: false },
            ],
            restartPolicy: "always",
          }],
        },
      },
      rollout: { strategy: "Immediate" },
    },
  };
  assert.deepEqual(Deployment.parse(YAML.parse(yaml)), expected);
  assert.deepEqual(YAML.parse(yaml), expected, "the printed object is complete as it is");
});

Deno.test("fleet apply deployment -f FILE --print round-trips the file", async () => {
  const fromFile = Deployment.parse(YAML.parse(await Deno.readTextFile(join(ROOT, WEB_YAML))));
  const yaml = assertOk(await fleet("apply", "deployment", "-f", WEB_YAML, "--print"));
  assert.deepEqual(Deployment.parse(YAML.parse(yaml)), fromFile);
  assert.equal(fromFile.metadata.namespace, "retail");
});

// --- apply -f: files, directories, stdin, several objects

/** A Deployment manifest as YAML; `service` overrides fields of its one service. */
function manifestYaml(name: string, service: Record<string, unknown> = {}): string {
  return YAML.stringify({
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name, namespace: "default" },
    spec: {
      targetSelector: { matchLabels: { site: "lab" } },
      score: {
        type: "PodmanV0",
        data: { services: [{ name, image: `localhost/${name}:1`, ...service }] },
      },
    },
  });
}

Deno.test("fleet apply -f FILE --print, at the top level as kubectl has it, round-trips the file", async () => {
  const fromFile = Deployment.parse(YAML.parse(await Deno.readTextFile(join(ROOT, WEB_YAML))));
  const yaml = assertOk(await fleet("apply", "-f", WEB_YAML, "--print"));
  assert.deepEqual(Deployment.parse(YAML.parse(yaml)), fromFile);
});

Deno.test("fleet apply -f applies every object of files, a directory and stdin in order, refuses the invalid ones by file and document, and exits 2", async () => {
  await using ns = await startNatsServer();
  await withTempDir(async (dir) => {
    const many = join(dir, "many.yaml");
    await Deno.writeTextFile(
      many,
      [
        manifestYaml("web"),
        manifestYaml("api", { restartPolicyy: "always" }),
        "# nothing here\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
        manifestYaml("db"),
      ].join("---\n"),
    );
    await Deno.mkdir(join(dir, "more"));
    await Deno.writeTextFile(join(dir, "more", "b.yaml"), manifestYaml("queue"));
    await Deno.writeTextFile(
      join(dir, "more", "a.json"),
      JSON.stringify(YAML.parse(manifestYaml("cache"))),
    );
    await Deno.writeTextFile(join(dir, "more", "notes.txt"), "not a manifest");
    const args = ["apply", "-f", many, "-f", join(dir, "more"), "-f", "-", "--nats-url", ns.url];
    const first = await fleetWith({ stdin: manifestYaml("proxy") }, ...args);
    assert.equal(first.code, 2, describe(first));
    assert.equal(
      first.stdout,
      [
        "deployment default/web created (generation 1)",
        "deployment default/db created (generation 1)",
        "deployment default/cache created (generation 1)",
        "deployment default/queue created (generation 1)",
        "deployment default/proxy created (generation 1)",
        "",
      ].join("\n"),
    );
    const refusals = first.stderr.trimEnd().split("\n");
    assert.deepEqual(refusals, [
      `ERROR ${many} document 2: deployment default/api refused: ` +
      "spec.score.data.services[0].restartPolicyy: unknown field",
      `ERROR ${many} document 4: refused: kind "ConfigMap": fleet apply takes only kind ` +
      `Deployment of apiVersion ${API_VERSION}`,
    ]);
    // Again: what was applied is unchanged, the refusals are the same.
    const again = await fleetWith({ stdin: manifestYaml("proxy") }, ...args);
    assert.equal(again.code, 2, describe(again));
    assert.equal(again.stdout.match(/unchanged \(generation 1\)/g)?.length, 5, describe(again));
    assert.equal(again.stderr, first.stderr);
    const applied = JSON.parse(
      assertOk(await fleet("get", "deployments", "-o", "json", "--nats-url", ns.url)),
    );
    assert.deepEqual(
      applied.items.map((d: Deployment) => d.metadata.name),
      ["cache", "db", "proxy", "queue", "web"],
    );
  });
});

Deno.test("fleet apply -f takes a file saved with kubectl get -o yaml (metadata and status are not applied)", async () => {
  await withTempDir(async (dir) => {
    const saved = YAML.parse(manifestYaml("web"));
    Object.assign(saved.metadata, {
      uid: "5f0c1a2e-3b4d-4c5e-8f90-112233445566",
      resourceVersion: "48213",
      generation: 3,
      creationTimestamp: "2025-01-14T08:00:00Z",
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      finalizers: ["fleet.nationtech.io/finalizer"],
      managedFields: [{ manager: "fleet-cli", operation: "Apply" }],
    });
    saved.status = { observedGeneration: 3, aggregate: { matchedDeviceCount: 2 } };
    const path = join(dir, "saved.yaml");
    await Deno.writeTextFile(path, YAML.stringify(saved));
    const printed = YAML.parse(assertOk(await fleet("apply", "-f", path, "--print")));
    assert.equal(printed.status, undefined);
    assert.equal(printed.metadata.uid, undefined);
    assert.equal(printed.metadata.name, "web");
  });
});

Deno.test("fleet apply deployment -f is repeatable and refuses an unknown field too", async () => {
  await withTempDir(async (dir) => {
    const [a, b, typo] = ["a.yaml", "b.yaml", "typo.yaml"].map((name) => join(dir, name));
    await Deno.writeTextFile(a!, manifestYaml("web"));
    await Deno.writeTextFile(b!, manifestYaml("api"));
    await Deno.writeTextFile(typo!, manifestYaml("db", { imagePullPolicy: "Always" }));
    const both = assertOk(await fleet("apply", "deployment", "-f", a!, "-f", b!, "--print"));
    assert.deepEqual(
      both.split("\n---\n").map((doc) => YAML.parse(doc).metadata.name),
      ["web", "api"],
    );
    assertOneLineError(
      await fleet("apply", "deployment", "-f", typo!, "--print"),
      2,
      `${typo} document 1`,
      "spec.score.data.services[0].imagePullPolicy: unknown field",
    );
  });
});

Deno.test("fleet apply -f refuses an environment variable longer than Linux passes to a program", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "cert.yaml");
    await Deno.writeTextFile(
      path,
      manifestYaml("web", { env: [{ name: "CERT", value: "x".repeat(131_072) }] }),
    );
    assertOneLineError(
      await fleet("apply", "-f", path, "--print"),
      2,
      `${path} document 1: deployment default/web refused`,
      `environment variable "CERT" is 131077 bytes`,
      "at most 131071 bytes",
    );
  });
});

Deno.test("fleet apply -f refuses a deployment larger than the NATS server's max_payload, with both sizes", async () => {
  await using ns = await startNatsServer({ extraConfig: "max_payload: 4096\n" });
  await withTempDir(async (dir) => {
    const path = join(dir, "big.yaml");
    await Deno.writeTextFile(
      path,
      manifestYaml("web", { env: [{ name: "BIG", value: "x".repeat(5000) }] }) + "---\n" +
        manifestYaml("small"),
    );
    const result = await fleet("apply", "-f", path, "--nats-url", ns.url);
    assert.equal(result.code, 2, describe(result));
    assert.equal(result.stdout, "deployment default/small created (generation 1)\n");
    assert.match(
      result.stderr,
      new RegExp(
        `^ERROR ${path} document 1: Deployment default/web is \\d+ bytes as stored; .*at most 4096 bytes.*max_payload`,
      ),
    );
    assert.doesNotMatch(result.stderr, /kept changing/);
  });
});

/** The `fleet apply` commands README.md shows in its shell blocks, continuations joined. */
async function readmeApplyCommands(): Promise<string[]> {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((block) =>
    block.replace(/\\\n\s*/g, "").split("\n").map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => /^(\S+ \| )?fleet apply\b/.test(line))
  );
}

/** The example lines of a help text that run `fleet apply`, without their remarks. */
function helpApplyExamples(help: string): string[] {
  return help.split("\n").map((line) => line.replace(/\s+\(.*\)$/, "").trim())
    .filter((line) => /^(\S+ \S+ \| )?fleet apply\b/.test(line));
}

Deno.test("every fleet apply command README.md and the help texts show works as written", async () => {
  const documented = [
    ...await readmeApplyCommands(),
    ...helpApplyExamples(assertOk(await fleet("--help"))),
    ...helpApplyExamples(assertOk(await fleet("apply", "--help"))),
    ...helpApplyExamples(assertOk(await fleet("apply", "deployment", "--help"))),
    // The comment at the top of the fixture.
    ...helpApplyExamples((await Deno.readTextFile(join(ROOT, WEB_YAML))).replace(/^#\s*/gm, "")),
  ].filter((line) => !line.includes("..."));
  assert.ok(documented.length >= 10, documented.join("\n"));
  assert.ok(documented.some((c) => c.startsWith("fleet apply -f")), documented.join("\n"));
  await using ns = await startNatsServer();
  await withTempDir(async (dir) => {
    const web = await Deno.readTextFile(join(ROOT, WEB_YAML));
    await Deno.writeTextFile(join(dir, "web.yaml"), web);
    await Deno.writeTextFile(join(dir, "extra.yaml"), manifestYaml("extra"));
    await Deno.mkdir(join(dir, "deployments"));
    await Deno.writeTextFile(join(dir, "deployments", "api.yaml"), manifestYaml("api"));
    await Deno.mkdir(join(dir, "fixtures", "deployments"), { recursive: true });
    await Deno.writeTextFile(join(dir, WEB_YAML), web);
    for (const command of documented) {
      // Kubernetes is not here: what goes there is printed instead of applied.
      const line = command.includes("--target kube") ? `${command} --print` : command;
      const result = await run("sh", [
        "-c",
        `fleet() { "$DENO_BIN" run -A "$MAIN_TS" "$@"; }\n${line}`,
      ], {
        cwd: dir,
        env: { DENO_BIN: Deno.execPath(), MAIN_TS: MAIN, FLEET_NATS_URL: ns.url },
      });
      assert.equal(result.code, 0, `${line}\n${describe(result)}`);
      assert.equal(result.stderr, "", `${line}\n${describe(result)}`);
    }
  });
});

Deno.test("fleet reads each flag from its environment variable", async () => {
  const yaml = assertOk(
    await fleetWithEnv(
      {
        FLEET_DEPLOYMENT_NAME: "web",
        FLEET_DEPLOYMENT_IMAGE: "localhost/web:1",
        FLEET_DEPLOYMENT_PORT: "8080:80",
        FLEET_DEPLOYMENT_SELECTOR: "site=lab",
        FLEET_NAMESPACE: "team-a",
        FLEET_APPLY_PRINT: "1",
      },
      "apply",
      "deployment",
    ),
  );
  const printed = Deployment.parse(YAML.parse(yaml));
  assert.deepEqual(printed.metadata, { name: "web", namespace: "team-a" });
  assert.deepEqual(printed.spec.targetSelector, { matchLabels: { site: "lab" } });
  // A flag still wins over its variable.
  const flagged = YAML.parse(assertOk(
    await fleetWithEnv(
      {
        FLEET_NAMESPACE: "team-a",
        FLEET_DEPLOYMENT_IMAGE: "localhost/web:1",
        FLEET_DEPLOYMENT_SELECTOR: "site=lab",
      },
      "apply",
      "deployment",
      "--name",
      "web",
      "-n",
      "team-b",
      "--print",
    ),
  ));
  assert.equal(flagged.metadata.namespace, "team-b");
});

Deno.test("fleet device enroll refuses a free-text label value from FLEET_DEVICE_LABEL too, before touching anything", async () => {
  assertOneLineError(
    await fleetWithEnv(
      { FLEET_DEVICE_LABEL: "site=Building 7 / Room 3", FLEET_DEVICE_ID: "pi-7" },
      "device",
      "enroll",
      "--target",
      "ssh://pi@192.0.2.1",
    ),
    2,
    "--label site=building-7-room-3",
  );
});

Deno.test("fleet warns about a secret on its command line, and reads it from a file or standard input instead", async () => {
  const args = ["get", "deployments", "--nats-url", "nats://127.0.0.1:1", "--nats-user", "dev"];
  const typed = await fleet(...args, "--nats-password", "hunter2");
  assert.equal(typed.code, 1, describe(typed));
  assert.match(
    typed.stderr,
    /WARN.* --nats-password on the command line shows the secret to every user of this machine \(ps\); use --nats-password-file/,
    describe(typed),
  );
  const missing = await fleet(...args, "--nats-password-file", "/nonexistent/pw");
  assertOneLineError(missing, 2, "--nats-password-file /nonexistent/pw does not exist");
  // Read from standard input, it gets as far as connecting, and nothing warns about ps.
  const piped = await fleetWith({ stdin: "hunter2\n" }, ...args, "--nats-password-file", "-");
  assert.equal(piped.code, 1, describe(piped));
  assert.match(piped.stderr, /Cannot connect to NATS at 127\.0\.0\.1:1/, describe(piped));
  assert.doesNotMatch(piped.stderr, /on the command line/, describe(piped));
});

Deno.test("fleet reports a failure's detail at --log-level debug (or FLEET_LOG_LEVEL=debug) only", async () => {
  const args = ["get", "deployments", "--nats-url", "nats://127.0.0.1:1"];
  assertOneLineError(await fleet(...args), 1, "127.0.0.1:1");
  for (
    const run of [
      await fleet(...args, "--log-level", "debug"),
      await fleetWithEnv({ FLEET_LOG_LEVEL: "debug" }, ...args),
    ]
  ) {
    assert.equal(run.code, 1, describe(run));
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /^ERROR Cannot connect to NATS at 127\.0\.0\.1:1/m, describe(run));
    // The stack, then the library's error it was caused by.
    assert.match(run.stderr, /^DEBUG NatsConnectError: .*\n\s+at /m, describe(run));
    assert.match(run.stderr, /^Caused by: /m, describe(run));
  }
  // A usage error keeps exit code 2 and its one line; the detail comes only when asked for.
  const usage = ["apply", "deployment", "--name", "Bad_Name", "--image", "x", "--print"];
  assertOneLineError(await fleet(...usage), 2, `"Bad_Name"`);
  const detailed = await fleet(...usage, "--log-level", "debug");
  assert.equal(detailed.code, 2, describe(detailed));
  assert.match(detailed.stderr, /^DEBUG InvalidIdentifierError: /m, describe(detailed));
});

Deno.test("fleet --log-format json reports a failure as JSON", async () => {
  const run = await fleet(
    "get",
    "deployments",
    "--nats-url",
    "nats://127.0.0.1:1",
    "--log-format",
    "json",
  );
  assert.equal(run.code, 1, describe(run));
  const lines = run.stderr.trim().split("\n").map((line) => JSON.parse(line));
  assert.equal(lines.length, 1, describe(run));
  assert.equal(lines[0].level, "error");
  assert.match(lines[0].msg, /127\.0\.0\.1:1/);
});

// --- against a real nats-server

Deno.test("fleet apply deployment creates, leaves unchanged, then configures a deployment", async () => {
  await using ns = await startNatsServer();
  const apply = (image: string, ...more: string[]) =>
    fleet(
      "apply",
      "deployment",
      "--name",
      "web",
      "--image",
      image,
      "--selector",
      "site=lab",
      "--nats-url",
      ns.url,
      ...more,
    );
  assert.equal(
    assertOk(await apply("localhost/web:1")),
    "deployment default/web created (generation 1)\n",
  );
  assert.equal(
    assertOk(await apply("localhost/web:1")),
    "deployment default/web unchanged (generation 1)\n",
  );
  assert.equal(
    assertOk(await apply("localhost/web:2")),
    "deployment default/web configured (generation 2)\n",
  );
  // The connection's progress is there for whoever asks for it.
  const debug = await apply("localhost/web:2", "--log-level", "debug");
  assert.equal(debug.code, 0, describe(debug));
  assert.equal(debug.stdout, "deployment default/web unchanged (generation 2)\n");
  assert.match(debug.stderr, /Connected to NATS at 127\.0\.0\.1:/);
});

Deno.test("fleet apply deployment warns when a host port is already used on devices it selects, and applies", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  using _pi1 = await registerTestDevice(nc, testDeviceInfo("pi-1", { site: "lab" }));
  using _pi2 = await registerTestDevice(nc, testDeviceInfo("pi-2", { site: "lab" }));
  using _pi3 = await registerTestDevice(nc, testDeviceInfo("pi-3", { site: "shop" }));
  const apply = (name: string, port: string, site = "lab") =>
    fleet(
      "apply",
      "deployment",
      "--name",
      name,
      "--image",
      `localhost/${name}:1`,
      "--port",
      port,
      "--selector",
      `site=${site}`,
      "--nats-url",
      ns.url,
    );
  assertOk(await apply("web", "8080:80"));

  const api = await apply("api", "8080:8080");
  assert.equal(api.code, 0, describe(api));
  assert.equal(api.stdout, "deployment default/api created (generation 1)\n");
  const lines = api.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, describe(api));
  assert.match(
    lines[0]!,
    /WARN +port 8080\/tcp is already used by deployment default\/web on 2 device\(s\) \(pi-1, pi-2\); deployment default\/api will be Failed there$/,
  );
  // Another protocol, or devices web does not run on: nothing to say.
  assertOk(await apply("dns", "8080:53/udp"));
  assertOk(await apply("shop", "8080:80", "shop"));
});

Deno.test("fleet get deployments shows a table, JSON and YAML", async () => {
  await using ns = await startNatsServer();
  const url = ["--nats-url", ns.url];
  const all = ["--all-bound-devices"];
  assert.equal(assertOk(await fleet("get", "deployments", ...url)), "No deployments.\n");
  assertOk(
    await fleet(
      "apply",
      "deployment",
      "--name",
      "web",
      "--image",
      "localhost/web:1",
      ...all,
      ...url,
    ),
  );
  assertOk(
    await fleet(
      "apply",
      "deployment",
      "--name",
      "web",
      "--image",
      "localhost/web:2",
      ...all,
      ...url,
    ),
  );

  const [header, ...rows] = assertOk(await fleet("get", "deployments", ...url)).trimEnd().split(
    "\n",
  );
  assert.deepEqual(
    header?.split(/\s{2,}/).slice(0, 8),
    ["NAMESPACE", "NAME", "GEN", "MATCHED", "SUCCEEDED", "FAILED", "PENDING", "UNREACHABLE"],
  );
  assert.equal(rows.length, 1);
  assert.match(rows[0]!, /^default\s+web\s+2\*?\s/);

  const json = JSON.parse(assertOk(await fleet("get", "deployments", "-o", "json", ...url)));
  assert.equal(json.items.length, 1);
  assert.equal(json.items[0].metadata.generation, 2);
  assert.equal(json.items[0].spec.score.data.services[0].image, "localhost/web:2");

  const yaml = YAML.parse(assertOk(await fleet("get", "deployments", "-o", "yaml", ...url)));
  assert.equal(yaml.items[0].metadata.name, "web");
  assert.equal(yaml.items[0].metadata.generation, 2);
});

Deno.test("fleet namespace bind, get namespaces and unbind keep namespaces' bindings on nats", async () => {
  await using ns = await startNatsServer();
  const url = ["--nats-url", ns.url];
  assert.equal(assertOk(await fleet("get", "namespaces", ...url)), "No namespaces.\n");
  assert.equal(
    assertOk(await fleet("namespace", "bind", "team-a", "--devices", "site=a", ...url)),
    "namespace team-a bound to devices site=a\n",
  );
  assertOk(await fleet("namespace", "bind", "lab", "--devices", " * ", ...url));
  assertOneLineError(
    await fleet("namespace", "bind", "team-b", "--devices", "site in ()", ...url),
    2,
    `"site in ()"`,
    "at least one value",
  );
  assertOneLineError(
    await fleet("namespace", "bind", "team-b", "--devices", "", ...url),
    2,
    "must not be empty",
    "every device with *",
  );
  assertOneLineError(
    await fleet("namespace", "bind", "Team_B", "--devices", "site=b", ...url),
    2,
    `"Team_B"`,
    "namespace",
  );
  assert.deepEqual(
    assertOk(await fleet("get", "namespaces", ...url)).trimEnd().split("\n").map((l) =>
      l.trimEnd()
    ),
    ["NAMESPACE   DEVICES", "lab         *", "team-a      site=a"],
  );
  assert.equal(
    assertOk(await fleet("namespace", "unbind", "team-a", ...url)),
    "namespace team-a unbound: it targets no device\n",
  );
  assertOneLineError(
    await fleet("namespace", "unbind", "team-a", ...url),
    1,
    "team-a",
    "no binding",
  );
  const json = JSON.parse(assertOk(await fleet("get", "namespaces", "-o", "json", ...url)));
  assert.deepEqual(json.items, [{ namespace: "lab", deviceSelector: "*" }]);
});

Deno.test("fleet get devices on an empty fleet says so", async () => {
  await using ns = await startNatsServer();
  assert.equal(assertOk(await fleet("get", "devices", "--nats-url", ns.url)), "No devices.\n");
  const json = JSON.parse(
    assertOk(await fleet("get", "devices", "-o", "json", "--nats-url", ns.url)),
  );
  assert.deepEqual(json, { items: [] });
});

Deno.test("fleet device label sets, changes with --overwrite, removes and copies reported labels; fleet get devices shows them and what devices report", async () => {
  await using ns = await startNatsServer();
  await using nc = await testConnection(ns.url);
  using _pi1 = await registerTestDevice(nc, testDeviceInfo("pi-1", { site: "lab" }));
  // pi-2's agent reports site=vault; nobody labelled it.
  await (await ensureBucket(nc, Buckets.deviceInfo, { replicas: 1, history: 1 }))
    .put(keys.deviceInfo("pi-2"), JSON.stringify(testDeviceInfo("pi-2", { site: "vault" })));
  const label = (...args: string[]) => fleet("device", "label", ...args, "--nats-url", ns.url);

  const before = assertOk(await fleet("get", "devices", "--nats-url", ns.url)).split("\n");
  assert.match(before[0]!, /LABELS\s+REPORTED$/);
  assert.match(before[1]!, /^pi-1 .*site=lab\s*$/);
  assert.match(before[2]!, /^pi-2 .*0\.0\.0-test\s+site=vault$/);

  assert.equal(
    assertOk(await label("pi-2", "site=shop", "rack=r1")),
    "device pi-2 labelled: rack=r1,site=shop\n",
  );
  assertOneLineError(await label("pi-2", "site=lab"), 2, "already has site=shop", "--overwrite");
  assert.equal(
    assertOk(await label("pi-2", "site=lab", "rack-", "--overwrite")),
    "device pi-2 labelled: site=lab\n",
  );
  assert.equal(assertOk(await label("pi-2", "site=lab")), "device pi-2 unchanged: site=lab\n");
  assert.equal(
    assertOk(await label("pi-2", "--from-reported", "--overwrite")),
    "device pi-2 labelled: site=vault\n",
  );
  const json = JSON.parse(
    assertOk(await fleet("get", "devices", "-o", "json", "--nats-url", ns.url)),
  );
  assert.deepEqual(json.items[1].labels, { [DEVICE_ID_LABEL]: "pi-2", site: "vault" });

  assertOneLineError(await label("pi-2", "site=Room 4"), 2, 'site="Room 4"', "label value");
  assertOneLineError(await label("pi-2", `${DEVICE_ID_LABEL}=pi-1`), 2, "the device's identity");
  assertOneLineError(await label("pi-2"), 2, "Nothing to change");
  assertOneLineError(await label("pi-9", "--from-reported"), 2, "pi-9 has never reported");
});

Deno.test("fleet delete deployment deletes, then exits 1 unless --ignore-not-found", async () => {
  await using ns = await startNatsServer();
  const url = ["--nats-url", ns.url];
  const all = ["--all-bound-devices"];
  assertOk(
    await fleet(
      "apply",
      "deployment",
      "--name",
      "web",
      "--image",
      "localhost/web:1",
      ...all,
      ...url,
    ),
  );
  assert.equal(
    assertOk(await fleet("delete", "deployment", "web", ...url)),
    "deployment default/web deleted\n",
  );
  assertOneLineError(
    await fleet("delete", "deployment", "web", ...url),
    1,
    "default/web",
    "not found",
  );
  const ignored = await fleet("delete", "deployment", "web", "--ignore-not-found", ...url);
  assertOk(ignored);
  assert.equal(assertOk(await fleet("get", "deployments", ...url)), "No deployments.\n");
});

Deno.test("fleet keeps deployments of the same name in two namespaces apart", async () => {
  await using ns = await startNatsServer();
  const url = ["--nats-url", ns.url];
  for (const namespace of ["team-a", "team-b"]) {
    assert.equal(
      assertOk(
        await fleet(
          "apply",
          "deployment",
          "--name",
          "web",
          "-n",
          namespace,
          "--image",
          "localhost/web:1",
          "--selector",
          "site=lab",
          ...url,
        ),
      ),
      `deployment ${namespace}/web created (generation 1)\n`,
    );
  }
  const rows = assertOk(await fleet("get", "deployments", ...url)).trimEnd().split("\n").slice(1);
  assert.deepEqual(rows.map((r) => r.split(/\s+/).slice(0, 2)), [["team-a", "web"], [
    "team-b",
    "web",
  ]]);

  const onlyA = assertOk(await fleet("get", "deployments", "-n", "team-a", ...url));
  assert.deepEqual(onlyA.trimEnd().split("\n").slice(1).map((r) => r.split(/\s+/)[0]), ["team-a"]);

  assertOk(await fleet("delete", "deployment", "web", "-n", "team-a", ...url));
  const left = JSON.parse(assertOk(await fleet("get", "deployments", "-o", "json", ...url)));
  assert.deepEqual(
    left.items.map((d: Deployment) => `${d.metadata.namespace}/${d.metadata.name}`),
    ["team-b/web"],
  );
});

Deno.test("fleet apply deployment fails fast with exit 1 when nothing listens at the NATS URL", async () => {
  const run = await fleet(
    "apply",
    "deployment",
    "--name",
    "web",
    "--image",
    "localhost/web:1",
    "--selector",
    "site=lab",
    "--nats-url",
    "nats://127.0.0.1:1",
  );
  assertOneLineError(run, 1, "127.0.0.1:1");
  assert.ok(run.ms < 5000, `failed within a few seconds (took ${Math.round(run.ms)} ms)`);
});

Deno.test("fleet operator chart writes the Helm chart (the image comes from fleet operator image)", async () => {
  await withTempDir(async (dir) => {
    const out = assertOk(await fleet("operator", "chart", "--output", dir));
    assert.match(out, /\/fleet \(Helm chart\)/);
    for (
      const path of [
        "fleet/Chart.yaml",
        "fleet/values.yaml",
        "fleet/crds/fleet.nationtech.io.yaml",
        "fleet/templates/deployment.yaml",
        "fleet/templates/clusterrole.yaml",
        "fleet/templates/nats-statefulset.yaml",
        "fleet/templates/callout-deployment.yaml",
        "fleet/templates/route.yaml",
      ]
    ) {
      assert.ok((await Deno.stat(join(dir, path))).isFile, `${path} written`);
    }
    const crds = await Deno.readTextFile(join(dir, "fleet/crds/fleet.nationtech.io.yaml"));
    assert.match(crds, /helm\.sh\/resource-policy: keep/);
  });
});

Deno.test("fleet operator image refuses an unknown --arch and an index name without a tag", async () => {
  assertOneLineError(
    await fleet("operator", "image", "--arch", "amd64,s390x"),
    2,
    '"s390x"',
    "amd64, arm64",
  );
  assertOneLineError(
    await fleet("operator", "image", "--tag", "registry.lan:5000/fleet"),
    2,
    '"registry.lan:5000/fleet" has no tag',
  );
});

Deno.test("fleet operator crds prints both CRDs as YAML", async () => {
  const out = assertOk(await fleet("operator", "crds"));
  assert.match(out, /name: deployments\.fleet\.nationtech\.io/);
  assert.match(out, /name: devices\.fleet\.nationtech\.io/);
});

Deno.test("fleet apply, get and delete authenticate as an admin with OIDC flags, through the auth callout", async () => {
  installConnectionResetGuard(silentLogger);
  await using idp = await startTestProvider();
  const admin = await idp.addMachineUser({ id: "alice", roles: ["admin"] });
  const device = await idp.addMachineUser({ id: "pi-1", roles: ["device"] });
  await withTempDir(async (dir) => {
    const configPath = await writeCalloutFiles(dir, {
      oidc: {
        issuer: idp.issuer,
        audience: idp.audience,
        device_id_claim: idp.deviceIdClaim,
        role_claim: ZITADEL_ROLES_CLAIM,
        roles: { device: "device", admin: "admin", viewer: "viewer", maintainer: "maintainer" },
      },
    });
    const config = await calloutConfigFile.load(configPath);
    const keys = await loadCalloutKeys(config, configPath);
    await using ns = await startNatsServer({
      extraConfig: calloutServerConfig(serverSettings(config, keys)),
    });
    const calloutNc = await connect({
      servers: ns.url,
      user: "fleet-callout",
      pass: keys.password,
    });
    const callout = await startCalloutService({
      nc: calloutNc,
      verifier: createTokenVerifier({
        issuer: idp.issuer,
        audience: idp.audience,
        logger: silentLogger,
      }),
      policy: authorizerPolicy(config),
      account: config.account.name,
      issuer: keys.issuer,
      logger: silentLogger,
    });
    try {
      const keyFile = async (name: string, jwk: object) => {
        const path = join(dir, `${name}.json`);
        await Deno.writeTextFile(path, JSON.stringify(jwk), { mode: 0o600 });
        return path;
      };
      const as = (user: { clientId: string }, key: string) => [
        "--nats-url",
        ns.url,
        "--oidc-issuer",
        idp.issuer,
        "--oidc-key",
        key,
        "--oidc-client-id",
        user.clientId,
        "--oidc-audience",
        idp.audience,
      ];
      const alice = as(admin, await keyFile("alice", admin.privateKeyJwk));
      assert.equal(
        assertOk(
          await fleet(
            "apply",
            "deployment",
            "--name",
            "web",
            "--image",
            "localhost/web:1",
            "--selector",
            "site=lab",
            ...alice,
          ),
        ),
        "deployment default/web created (generation 1)\n",
      );
      const listed = JSON.parse(
        assertOk(await fleet("get", "deployments", "-o", "json", ...alice)),
      );
      assert.deepEqual(listed.items.map((d: Deployment) => d.metadata.name), ["web"]);
      assert.equal(assertOk(await fleet("get", "devices", ...alice)), "No devices.\n");

      // The same identity from the environment, as a Secret would give it.
      const [, , , issuer, , key, , clientId, , audience] = alice;
      const fromEnv = await fleetWithEnv(
        {
          FLEET_NATS_URL: ns.url,
          FLEET_OIDC_ISSUER: issuer!,
          FLEET_OIDC_KEY: await Deno.readTextFile(key!),
          FLEET_OIDC_CLIENT_ID: clientId!,
          FLEET_OIDC_AUDIENCE: audience!,
        },
        "delete",
        "deployment",
        "web",
      );
      assert.equal(assertOk(fromEnv), "deployment default/web deleted\n");

      // Without an identity, or with a device's, the fleet's deployments are out of reach.
      assertOneLineError(
        await fleet("get", "deployments", "--nats-url", ns.url),
        1,
        ns.url.replace(/^nats:\/\//, ""),
      );
      const asDevice = await fleet(
        "get",
        "deployments",
        ...as(device, await keyFile("pi-1", device.privateKeyJwk)),
      );
      assert.equal(asDevice.code, 1, describe(asDevice));
      assert.equal(asDevice.stdout, "");

      // A viewer reads, a maintainer also applies: each on the inbox of its principal.
      const viewer = await idp.addMachineUser({ id: "bob", roles: ["viewer"] });
      const maintainer = await idp.addMachineUser({ id: "mia", roles: ["maintainer"] });
      const bob = as(viewer, await keyFile("bob", viewer.privateKeyJwk));
      const mia = as(maintainer, await keyFile("mia", maintainer.privateKeyJwk));
      const apply = ["apply", "deployment", "--name", "api", "--image", "localhost/api:1"];
      assertOk(await fleet(...apply, "--selector", "site=lab", ...mia));
      const refused = await fleet(...apply, "--selector", "site=lab", "--image", "x:2", ...bob);
      assert.equal(refused.code, 1, describe(refused));
      assert.match(refused.stderr, /lacks that permission/);
      assert.match(
        refused.stderr,
        /Permissions Violation for Publish to "\$KV\.fleet-deployments\./,
      );
      assert.match(assertOk(await fleet("get", "deployments", ...bob)), /\bapi\b/);
      assert.equal(assertOk(await fleet("get", "devices", ...bob)), "No devices.\n");
      assert.ok(callout.stats.allowed >= 8, JSON.stringify(callout.stats));
    } finally {
      await callout.stop();
      await calloutNc.close();
      keys.issuer.clear();
    }
  });
});

Deno.test("fleet exec exits 2 before connecting when the deployment or the command is missing or invalid", async () => {
  assertOneLineError(
    await fleet("exec", "pi-1"),
    2,
    "Give the deployment, then the command after --",
  );
  assertOneLineError(await fleet("exec", "pi-1", "web"), 2, "Give the command to run after --");
  assertOneLineError(await fleet("exec", "pi-1", "--host"), 2, "Give the command to run after --");
  assertOneLineError(
    await fleet("exec", "pi-1", "we.b", "--", "ls"),
    2,
    'Invalid deployment name "we.b"',
  );
  assertOneLineError(
    await fleet("exec", "pi-1", "web/a/b", "--", "ls"),
    2,
    'Invalid deployment "web/a/b": give DEPLOYMENT or DEPLOYMENT/SERVICE before --, or --host',
  );
});
