/**
 * DESIGN.md §6: every flag has an environment variable, and a variable names one thing. The
 * tests walk the real command tree: the command modules main.ts loads (checked against what
 * `fleet --help` lists, so a new command cannot be left out) and the benchmarks' program.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { NatsConnectionFlags, withNatsConnection } from "./_cli.ts";
import { agentCommand } from "./agent.ts";
import { applyCommand } from "./apply.ts";
import { auditCommand } from "./audit.ts";
import { calloutCommand } from "./callout.ts";
import { deleteCommand } from "./delete.ts";
import { demoCommand } from "./demo.ts";
import { deviceCommand } from "./device.ts";
import { getCommand } from "./get.ts";
import { logsCommand } from "./logs.ts";
import { execCommand } from "./exec.ts";
import { rolloutCommand } from "./rollout.ts";
import { namespaceCommand } from "./namespace.ts";
import { operatorCommand } from "./operator.ts";
import { vmCommand } from "./vm.ts";
import { zitadelCommand } from "./zitadel.ts";
import { benchProgram } from "../bench/main.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** `fleet`'s commands, as main.ts loads them. */
function fleetCommands(): CommandUnknownOpts[] {
  const version = "0.0.0-test";
  return [
    operatorCommand(version),
    agentCommand(version),
    applyCommand(),
    auditCommand(),
    deleteCommand(),
    getCommand(),
    logsCommand(),
    execCommand(),
    rolloutCommand(),
    demoCommand(version),
    calloutCommand(),
    deviceCommand(),
    namespaceCommand(),
    vmCommand(),
    zitadelCommand(),
  ];
}

interface FlagUse {
  /** `fleet get deployments` */
  command: string;
  /** `-n, --namespace <namespace>` */
  flags: string;
  envVar: string | undefined;
}

function flagUses(command: CommandUnknownOpts, path: string): FlagUse[] {
  return [
    ...command.options.map((option) => ({
      command: path,
      flags: option.flags,
      envVar: option.envVar,
    })),
    ...command.commands.flatMap((sub) => flagUses(sub, `${path} ${sub.name()}`)),
  ];
}

function allFlagUses(): FlagUse[] {
  return [
    ...fleetCommands().flatMap((c) => flagUses(c, `fleet ${c.name()}`)),
    ...benchProgram().commands.flatMap((c) => flagUses(c, `bench ${c.name()}`)),
  ];
}

/**
 * Different flags that mean the same thing, so may share a variable: where Deployments live is
 * `--source` to the operator and `--target` to the CLI (the CLI's flag predates the operator's).
 */
const SAME_MEANING: Record<string, readonly string[]> = {
  FLEET_SOURCE: ["--source <source>", "--target <target>"],
};

Deno.test("the command modules walked here are the commands fleet --help lists", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "--help"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const help = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  // The lines of the "Commands:" section, up to the blank line before the examples.
  const listed = help.split("Commands:\n")[1]?.split("\n\n")[0]?.split("\n")
    .map((line) => /^ {2}([a-z][\w-]*)\b/.exec(line)?.[1])
    .filter((name) => name !== undefined && name !== "help");
  assert.deepEqual(listed?.sort(), fleetCommands().map((c) => c.name()).sort());
});

Deno.test("every flag of every command has an environment variable", () => {
  const uses = allFlagUses();
  assert.ok(uses.length > 100, `the walk found the flags (${uses.length})`);
  const missing = uses.filter((u) => u.envVar === undefined);
  assert.deepEqual(
    missing.map((u) => `${u.command} ${u.flags}`),
    [],
    "flags without .env(): give each a FLEET_ variable",
  );
  const malformed = uses.filter((u) =>
    u.envVar !== undefined && !/^FLEET_[A-Z0-9_]+$/.test(u.envVar)
  );
  assert.deepEqual(malformed.map((u) => `${u.command} ${u.flags}: ${u.envVar}`), []);
});

Deno.test("no environment variable names two different flags", () => {
  const byVar = new Map<string, Map<string, string[]>>();
  for (const use of allFlagUses()) {
    if (use.envVar === undefined) continue;
    const flags = byVar.get(use.envVar) ?? new Map<string, string[]>();
    flags.set(use.flags, [...(flags.get(use.flags) ?? []), use.command]);
    byVar.set(use.envVar, flags);
  }
  // Flags listed as meaning the same count as one.
  const meaning = (envVar: string, flags: string) =>
    SAME_MEANING[envVar]?.includes(flags) ? envVar : flags;
  const shared = [...byVar].filter(([envVar, flags]) =>
    new Set([...flags.keys()].map((f) => meaning(envVar, f))).size > 1
  );
  assert.deepEqual(
    shared.map(([envVar, flags]) =>
      `${envVar}: ${[...flags].map(([f, commands]) => `${f} (${commands.join(", ")})`).join(" / ")}`
    ),
    [],
    "a variable shared by different flags: give each its own",
  );
});

Deno.test("the old FLEET_TARGET, which meant two things, is gone", () => {
  const uses = allFlagUses();
  assert.equal(uses.filter((u) => u.envVar === "FLEET_TARGET").length, 0);
  const envOf = (command: string, flags: string) =>
    uses.find((u) => u.command === command && u.flags === flags)?.envVar;
  assert.equal(envOf("fleet get deployments", "--target <target>"), "FLEET_SOURCE");
  assert.equal(envOf("fleet operator run", "--source <source>"), "FLEET_SOURCE");
  assert.equal(envOf("fleet device enroll", "--target <ssh-url>"), "FLEET_SSH_TARGET");
});

Deno.test("every command that talks to NATS takes the same connection flags, OIDC included", () => {
  const uses = allFlagUses();
  const connection = [
    "--nats-url <urls>",
    "--nats-user <user>",
    "--nats-password <password>",
    "--oidc-issuer <url>",
    "--oidc-client-id <id>",
    "--oidc-key <path-or-json>",
    "--oidc-grant <grant>",
    "--oidc-audience <audience>",
  ];
  for (
    const command of [
      "fleet apply",
      "fleet apply deployment",
      "fleet get deployments",
      "fleet get devices",
      "fleet delete deployment",
      "fleet operator run",
      "fleet device enroll",
      "fleet vm provision",
    ]
  ) {
    const flags = uses.filter((u) => u.command === command);
    for (const flag of connection) {
      assert.ok(
        flags.some((u) => u.flags === flag && u.envVar !== undefined),
        `${command} takes ${flag}`,
      );
    }
  }
});

Deno.test("withNatsConnection() gives the values its NatsConnectionFlags type describes", async () => {
  const command = withNatsConnection(new Command("x")).exitOverride().action(() => {});
  const given = {
    natsUrl: "tls://10.0.0.5:4222",
    natsCa: "/etc/fleet/nats-ca.pem",
    natsPin: "sha256//YGKWvf/F7SwqdyaraHlK85EEZLyr/MwswX8LacOr288=",
    natsUser: "u",
    natsPassword: "p",
    oidcIssuer: "https://id.example.com",
    oidcClientId: "alice",
    oidcKey: "/etc/fleet/alice.json",
    oidcGrant: "client-credentials",
    oidcAudience: "fleet-nats",
    oidcProvider: "zitadel",
    oidcProjectId: "302118472931950612",
  } as const;
  const args = Object.entries(given).flatMap(([name, value]) => [
    `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    value,
  ]);
  await command.parseAsync(args, { from: "user" });
  assert.deepEqual(NatsConnectionFlags.strict().parse(command.opts()), given);
});
