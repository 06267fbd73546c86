/**
 * The device itself, attacked from code running as its agent and from a tampered build cache.
 * The agent's Deno permissions stop what it never does (here, on this machine, with the
 * permissions its unit gives it); a package is never built with a Deno runtime other than the
 * pinned one. The unit's sandbox is attacked on a booted VM in e2e/enroll_vm_test.ts.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { agentDenoPermissions, type AgentPaths, PackagingError } from "../../packaging/deb.ts";
import { buildPackages } from "../../packaging/build.ts";
import { denoEscapesScript, escapeOutcomes } from "./_agent_escapes.ts";

/** An agent's directories under `dir` (its config in `etc`), as its unit names them on a device. */
async function agentDirs(dir: string): Promise<AgentPaths> {
  const paths = { stateDir: `${dir}/state`, podmanSocketDir: `${dir}/run` };
  for (const d of [...Object.values(paths), `${dir}/etc`]) await Deno.mkdir(d);
  return paths;
}

Deno.test("code running as the agent cannot write, run, load or import what the agent does not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-agent-escape-" });
  try {
    const paths = await agentDirs(dir);
    const configFile = `${dir}/etc/config.toml`;
    await Deno.writeTextFile(configFile, 'device_id = "pi-1"\n');
    const outside = `${dir}/outside`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", ...agentDenoPermissions(paths), "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { FLEET_NATS_PASSWORD: "secret", NO_COLOR: "1" },
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(denoEscapesScript({ configFile, outside })));
    await writer.close();
    const out = await child.output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr));
    const outcomes = escapeOutcomes(text.decode(out.stdout));
    assert.equal(Object.keys(outcomes).length, 7, JSON.stringify(outcomes));
    for (const [attempt, outcome] of Object.entries(outcomes)) {
      // A denied import surfaces as a TypeError, every other denial as NotCapable.
      assert.match(
        outcome,
        /^(NotCapable|TypeError): Requires \w+ access/,
        `${attempt}: ${outcome}`,
      );
    }
    // Nothing lost: the config is as it was, nothing was written outside.
    assert.equal(await Deno.readTextFile(configFile), 'device_id = "pi-1"\n');
    await assert.rejects(Deno.stat(outside), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a config whose state dir the agent may not write is refused at start, saying why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-agent-outside-" });
  try {
    const paths = await agentDirs(dir);
    const config = `${dir}/etc/config.toml`;
    await Deno.writeTextFile(
      config,
      `device_id = "pi-1"
state_dir = "${dir}/elsewhere"

[nats]
urls = ["nats://127.0.0.1:4222"]

[podman]
socket = "${paths.podmanSocketDir}/podman.sock"
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        fileURLToPath(new URL("../../deno.json", import.meta.url)),
        ...agentDenoPermissions(paths),
        fileURLToPath(new URL("../../main.ts", import.meta.url)),
        "agent",
        "run",
        "--config",
        config,
      ],
      clearEnv: true,
      env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(
      stderr,
      new RegExp(
        `Invalid agent config ${config}: the agent may not write to state_dir ${dir}/elsewhere \\(its service's Deno permissions allow`,
      ),
    );
    assert.doesNotMatch(stderr, /podman\.socket/, "the socket is where it may be");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tampered Deno runtime in the build cache is never packaged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-tampered-runtime-" });
  try {
    const runtime = `${dir}/cache/deno-runtime-${Deno.version.deno}/amd64/deno`;
    await Deno.mkdir(runtime.slice(0, runtime.lastIndexOf("/")), { recursive: true });
    // The real runtime with something added, as a poisoned cache or mirror would hand it over.
    const real = await Deno.readFile(Deno.execPath());
    await Deno.writeFile(runtime, new Uint8Array([...real.subarray(0, 4096), 0x90]), {
      mode: 0o755,
    });
    await assert.rejects(
      buildPackages({ outDir: `${dir}/dist`, arches: ["amd64"], cacheDir: `${dir}/cache` }),
      (e: Error) =>
        e instanceof PackagingError &&
        e.message.startsWith(
          `The cached Deno ${Deno.version.deno} runtime for amd64 (${runtime})`,
        ) &&
        /has SHA-512 [0-9a-f]{16}…, not the [0-9a-f]{16}… pinned in \S+deno-runtime\.sha512: refusing to package it/
          .test(e.message),
    );
    const built = await Array.fromAsync(Deno.readDir(`${dir}/dist`)).catch(() => []);
    assert.deepEqual(built, [], "no package was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
